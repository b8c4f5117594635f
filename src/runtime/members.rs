//! The members' addresses, kept in step with the membership.
//!
//! Consensus knows members by id only. Every membership entry carries, as its context, the
//! address of every member of the new membership ([`encode_addresses`]), so that a member
//! learns where a new member listens the moment the entry reaches its log (memberships take
//! effect when appended). The applied context is also kept in the state machine, so that it
//! survives snapshots and log compaction.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::codec::{Put, Reader};
use crate::limits::{LEARNERS_MAX, VOTERS_MAX};
use crate::types::NodeId;

/// Format version of an address list.
const FORMAT: u8 = 1;

/// Longest address text ("host:port") accepted.
const ADDRESS_BYTES_MAX: usize = 256;

/// Encodes the addresses of a membership's members (the context of its entry).
pub fn encode_addresses(addresses: &BTreeMap<NodeId, SocketAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 32 * addresses.len());
    out.put_u8(FORMAT);
    out.put_u32(addresses.len() as u32);
    for (id, address) in addresses {
        out.put_u64(*id);
        out.put_bytes(address.to_string().as_bytes());
    }
    out
}

/// Decodes [`encode_addresses`]; empty input is an empty list (an entry made without one).
pub fn decode_addresses(bytes: &[u8]) -> Result<BTreeMap<NodeId, SocketAddr>, String> {
    let mut out = BTreeMap::new();
    if bytes.is_empty() {
        return Ok(out);
    }
    let mut reader = Reader::new(bytes);
    let version = reader.u8()?;
    if version != FORMAT {
        return Err(format!("member address format {version} is not supported"));
    }
    let count = reader.u32()? as usize;
    if count > 2 * VOTERS_MAX + LEARNERS_MAX {
        return Err(format!("{count} member addresses are too many"));
    }
    for _ in 0..count {
        let id = reader.u64()?;
        let text = std::str::from_utf8(reader.bytes(ADDRESS_BYTES_MAX)?)
            .map_err(|_| "a member address is not UTF-8".to_string())?;
        let address = text
            .parse()
            .map_err(|_| format!("member {id}'s address {text:?} is not host:port"))?;
        out.insert(id, address);
    }
    reader.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_bad_ones_are_refused() {
        let book: BTreeMap<NodeId, SocketAddr> = [
            (1, "127.0.0.1:7101".parse().unwrap()),
            (4, "[::1]:7104".parse().unwrap()),
        ]
        .into();
        assert_eq!(decode_addresses(&encode_addresses(&book)), Ok(book.clone()));
        assert_eq!(decode_addresses(&[]), Ok(BTreeMap::new()));
        let mut bad = encode_addresses(&book);
        bad.push(0);
        assert!(decode_addresses(&bad).is_err());
        assert!(decode_addresses(&[2, 0, 0, 0, 0]).is_err());
        let mut not_an_address = vec![FORMAT];
        not_an_address.put_u32(1);
        not_an_address.put_u64(1);
        not_an_address.put_bytes(b"nowhere");
        assert!(decode_addresses(&not_an_address).is_err());
    }
}
