//! Group membership: members join a group under an id, with metadata, bound to a session;
//! they leave by request or when the session ends.

use std::collections::BTreeMap;

use super::command::Outcome;
use super::event::{Effects, Ended, EventKind, Space};
use crate::codec::{Put, Reader};
use crate::limits::{GROUP_MEMBERS_MAX, KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member id.
    pub id: Vec<u8>,
    /// The session its presence lasts with.
    pub session: u64,
    /// What it told the others.
    pub metadata: Vec<u8>,
    /// Revision of its (last) join.
    pub revision: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Present {
    session: u64,
    metadata: Vec<u8>,
    revision: u64,
}

/// Every group with at least one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups {
    map: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Present>>,
}

impl Groups {
    /// Number of groups with members.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether the group exists.
    pub fn contains(&self, group: &[u8]) -> bool {
        self.map.contains_key(group)
    }

    /// Joins (or updates the metadata of) `member`; refused when another session holds the id.
    pub fn join(
        &mut self,
        group: &[u8],
        member: &[u8],
        session: u64,
        metadata: &[u8],
        fx: &mut Effects,
    ) -> Outcome {
        let members = self.map.entry(group.to_vec()).or_default();
        match members.get(member) {
            Some(present) if present.session != session => {
                let revision = fx.now();
                return Outcome::Refused {
                    revision,
                    reason: format!(
                        "member {} of group {} is held by session {}",
                        String::from_utf8_lossy(member),
                        String::from_utf8_lossy(group),
                        present.session
                    ),
                };
            }
            None if members.len() >= GROUP_MEMBERS_MAX => {
                let revision = fx.now();
                if members.is_empty() {
                    self.map.remove(group);
                }
                return Outcome::Refused {
                    revision,
                    reason: format!("group has {GROUP_MEMBERS_MAX} members already"),
                };
            }
            _ => {}
        }
        let revision = fx.bump();
        members.insert(
            member.to_vec(),
            Present {
                session,
                metadata: metadata.to_vec(),
                revision,
            },
        );
        let event = fx.emit(Space::Group, group, EventKind::Joined);
        event.session = session;
        event.member = member.to_vec();
        event.value = metadata.to_vec();
        Outcome::Done { revision, ok: true }
    }

    /// Removes `member` if `session` holds it; returns whether it did.
    pub fn leave(
        &mut self,
        group: &[u8],
        member: &[u8],
        session: u64,
        why: Ended,
        fx: &mut Effects,
    ) -> bool {
        let Some(members) = self.map.get_mut(group) else {
            return false;
        };
        if members.get(member).is_none_or(|p| p.session != session) {
            return false;
        }
        members.remove(member);
        fx.bump();
        let event = fx.emit(Space::Group, group, EventKind::Left(why));
        event.session = session;
        event.member = member.to_vec();
        if members.is_empty() {
            self.map.remove(group);
        }
        true
    }

    /// Removes every member `session` holds in `group`.
    pub fn end_session(&mut self, group: &[u8], session: u64, why: Ended, fx: &mut Effects) {
        let ids: Vec<Vec<u8>> = self
            .map
            .get(group)
            .map(|members| {
                members
                    .iter()
                    .filter(|(_, p)| p.session == session)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            self.leave(group, &id, session, why, fx);
        }
    }

    /// Whether `session` still holds a member id in `group`.
    pub fn involves(&self, group: &[u8], session: u64) -> bool {
        self.map
            .get(group)
            .is_some_and(|members| members.values().any(|p| p.session == session))
    }

    /// The members of a group, by id.
    pub fn list(&self, group: &[u8]) -> Vec<Member> {
        self.map.get(group).map_or(Vec::new(), |members| {
            members
                .iter()
                .map(|(id, p)| Member {
                    id: id.clone(),
                    session: p.session,
                    metadata: p.metadata.clone(),
                    revision: p.revision,
                })
                .collect()
        })
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.map.len() as u64);
        for (group, members) in &self.map {
            out.put_bytes(group);
            out.put_u32(members.len() as u32);
            for (id, p) in members {
                out.put_bytes(id);
                out.put_u64(p.session);
                out.put_bytes(&p.metadata);
                out.put_u64(p.revision);
            }
        }
    }

    /// Decodes what [`Groups::encode`] wrote.
    pub fn decode(reader: &mut Reader) -> Result<Groups, String> {
        let count = reader.u64()?;
        if count > reader.bytes.len() as u64 {
            return Err(format!("{count} groups cannot fit in the snapshot"));
        }
        let mut groups = Groups::default();
        for _ in 0..count {
            let group = reader.bytes(KEY_BYTES_MAX)?.to_vec();
            let members = reader.u32()? as usize;
            if members > GROUP_MEMBERS_MAX {
                return Err(format!("{members} members exceed the limit"));
            }
            let mut map = BTreeMap::new();
            for _ in 0..members {
                let id = reader.bytes(KEY_BYTES_MAX)?.to_vec();
                let present = Present {
                    session: reader.u64()?,
                    metadata: reader.bytes(VALUE_BYTES_MAX)?.to_vec(),
                    revision: reader.u64()?,
                };
                map.insert(id, present);
            }
            groups.map.insert(group, map);
        }
        Ok(groups)
    }
}
