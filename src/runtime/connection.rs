//! One TCP connection of the event loop: non-blocking reads into a bounded buffer, frames
//! queued for writing with a byte bound, and who is on the other end.

use std::io::{ErrorKind, Read, Write};

use mio::net::TcpStream;

use super::wire::{self, Decoded, Frame};
use crate::limits::{CONNECTION_SEND_BYTES_MAX, FRAME_BYTES_MAX};
use crate::types::NodeId;

/// Initial size of a connection's receive buffer, and the free space kept before a read; the
/// buffer doubles to fit large frames and returns to this size once drained.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// Bytes read from one connection per turn of the event loop.
const READ_BUDGET_BYTES: usize = 1024 * 1024;

/// A drained receive buffer larger than this is shrunk back (idle connections stay small).
const RECEIVE_BUFFER_KEEP_BYTES: usize = 64 * 1024;

/// Who is on the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Accepted, waiting for its `Hello`.
    Unknown,
    /// A member that connected to us (we only receive on it).
    InboundMember(NodeId),
    /// A member we connected to (we send to it on this one).
    OutboundMember(NodeId),
    /// A client.
    Client(u64),
}

/// What reading from a connection produced.
pub enum ReadOutcome {
    /// The connection is still open.
    Open,
    /// The read budget of this turn is spent and more bytes may be waiting: read again on the
    /// next turn of the loop (the readiness event will not be repeated).
    MoreAvailable,
    /// The other end closed it, or it failed, or it broke the protocol (the text says how).
    Closed(String),
}

/// A connection's buffers and identity.
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// Who is on the other end.
    pub peer: Peer,
    /// The address it came from (accepted connections only; counted against
    /// `CONNECTIONS_PER_SOURCE_MAX`).
    pub source: Option<std::net::IpAddr>,
    /// Distinguishes this connection from earlier ones that used the same slot.
    pub serial: u64,
    /// Close once everything queued is written (after a refusal).
    pub close_after_flush: bool,
    /// Listed in the event loop's set of connections with output to write.
    pub listed_dirty: bool,
    /// The other end completed the handshake (`Hello` received, or `Welcome` for ours).
    pub welcomed: bool,
    /// When the connection was opened (a caller that never says `Hello` is dropped).
    pub opened: std::time::Instant,
    /// When bytes last arrived (idle clients are dropped after a while).
    pub last_received: std::time::Instant,
    /// Receive buffer: bytes `[0, filled)` are data not yet decoded. Allocated once and
    /// reused (never zeroed again), grown only to fit a large frame.
    received: Vec<u8>,
    filled: usize,
    to_send: Vec<u8>,
    sent: usize,
    /// Requests received on this connection and not yet answered (bounded by
    /// `PENDING_REQUESTS_PER_CONNECTION_MAX`).
    pub in_flight: usize,
    /// What the caller may do, when the member has an access file (set at its Hello).
    pub rights: Option<std::sync::Arc<super::access::Rights>>,
    /// The TLS session, when the connection is encrypted: frames are read from and written
    /// into it, and it reads and writes the socket.
    tls: Option<Box<rustls::Connection>>,
    /// An accepted TLS connection's first bytes were checked (a plaintext caller is told
    /// that this member requires TLS instead of being dropped without a word).
    first_bytes_checked: bool,
}

impl Connection {
    /// Wraps a connected (or connecting) socket.
    pub fn new(stream: TcpStream, peer: Peer, serial: u64) -> Connection {
        Connection {
            stream,
            peer,
            source: None,
            serial,
            close_after_flush: false,
            listed_dirty: false,
            welcomed: false,
            opened: std::time::Instant::now(),
            last_received: std::time::Instant::now(),
            received: vec![0; READ_CHUNK_BYTES],
            filled: 0,
            to_send: Vec::new(),
            sent: 0,
            tls: None,
            first_bytes_checked: false,
            in_flight: 0,
            rights: None,
        }
    }

    /// Encrypts the connection with `tls` (before anything is read or written on it).
    pub fn encrypt(&mut self, tls: rustls::Connection) {
        self.tls = Some(Box::new(tls));
    }

    /// The common name of the certificate the other end presented over TLS, if any (its
    /// identity; see `runtime::access`).
    pub fn certificate_name(&self) -> Option<String> {
        let certificates = self.tls.as_ref()?.peer_certificates()?;
        super::tls::common_name(certificates.first()?)
    }

    /// On an accepted TLS connection, looks at the caller's first bytes without consuming
    /// them: a TLS handshake record starts 0x16 0x03. Anything else (a client without TLS
    /// sending its `Hello`) gets a plaintext `Refused` frame saying that TLS is required, and
    /// the connection fails.
    fn refuse_plaintext_caller(&mut self) -> std::io::Result<()> {
        if !self
            .tls
            .as_ref()
            .is_some_and(|tls| matches!(**tls, rustls::Connection::Server(_)))
        {
            self.first_bytes_checked = true;
            return Ok(());
        }
        let mut head = [0u8; 2];
        // WouldBlock (nothing yet) goes back to the loop: the next bytes bring a new event.
        let seen = self.stream.peek(&mut head)?;
        if seen < head.len() {
            if seen == 0 {
                self.first_bytes_checked = true; // closed: the read will see it
                return Ok(());
            }
            return Err(ErrorKind::WouldBlock.into()); // one byte: wait for the second
        }
        self.first_bytes_checked = true;
        if head == [0x16, 0x03] {
            return Ok(());
        }
        let mut refusal = Vec::new();
        wire::encode(
            &Frame::Refused(
                "this member requires TLS: connect with the cluster's CA (--tls-ca, \
                 ClientConfig::tls)"
                    .into(),
            ),
            &mut refusal,
        );
        let _ = self.stream.write(&refusal); // best effort: a fresh socket's buffer is empty
        Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "a caller without TLS (told that TLS is required)",
        ))
    }

    /// Whether the other end presented a certificate (which rustls verified against the CA).
    pub fn has_peer_certificate(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|tls| tls.peer_certificates())
            .is_some_and(|chain| !chain.is_empty())
    }

    /// Reads bytes into the receive buffer: from the socket, or through TLS.
    fn read_bytes(&mut self) -> std::io::Result<usize> {
        if self.tls.is_none() {
            return self.stream.read(&mut self.received[self.filled..]);
        }
        if !self.first_bytes_checked {
            self.refuse_plaintext_caller()?;
        }
        let Some(tls) = self.tls.as_mut() else {
            return Ok(0);
        };
        // Bounded: each round either hands out plaintext, reads at least one byte from the
        // socket, or returns.
        loop {
            match tls.reader().read(&mut self.received[self.filled..]) {
                Ok(0) => return Ok(0), // the other end closed the TLS session cleanly
                Ok(count) => return Ok(count),
                Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
            if let Err(error) = tls.process_new_packets() {
                // Tell the other end why (best effort), then give up on the connection.
                let _ = tls.write_tls(&mut self.stream);
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("TLS: {error}"),
                ));
            }
        }
    }

    /// Reads everything available, then hands every complete frame to `on_frame`.
    pub fn read(&mut self, mut on_frame: impl FnMut(Frame)) -> ReadOutcome {
        let mut read_this_turn = 0usize;
        // Bounded: each round reads at least one byte, and READ_BUDGET_BYTES per turn, so one
        // busy connection cannot starve the others or the ticks.
        loop {
            if read_this_turn >= READ_BUDGET_BYTES {
                return self
                    .drain_frames(&mut on_frame)
                    .unwrap_or(ReadOutcome::MoreAvailable);
            }
            if self.received.len() - self.filled < READ_CHUNK_BYTES {
                if self.received.len() > 2 * FRAME_BYTES_MAX {
                    return ReadOutcome::Closed("sent more than a frame's worth".into());
                }
                let grown = self.received.len() * 2;
                self.received.resize(grown, 0);
            }
            match self.read_bytes() {
                Ok(0) => return ReadOutcome::Closed("closed by the other end".into()),
                Ok(count) => {
                    self.filled += count;
                    read_this_turn += count;
                    self.last_received = std::time::Instant::now();
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return ReadOutcome::Closed(error.to_string()),
            }
            if let Some(outcome) = self.drain_frames(&mut on_frame) {
                return outcome;
            }
        }
        self.drain_frames(&mut on_frame)
            .unwrap_or(ReadOutcome::Open)
    }

    fn drain_frames(&mut self, on_frame: &mut impl FnMut(Frame)) -> Option<ReadOutcome> {
        let mut offset = 0;
        let result = loop {
            match wire::decode(&self.received[offset..self.filled]) {
                Decoded::Frame(frame, used) => {
                    offset += used;
                    on_frame(frame);
                }
                Decoded::NeedMore => break None,
                Decoded::Invalid(why) => break Some(ReadOutcome::Closed(why)),
            }
        };
        self.received.copy_within(offset..self.filled, 0);
        self.filled -= offset;
        if self.filled == 0 && self.received.len() > RECEIVE_BUFFER_KEEP_BYTES {
            self.received = vec![0; READ_CHUNK_BYTES];
        }
        result
    }

    /// Queues a frame; returns false (and queues nothing) when the send buffer is full, which
    /// is back-pressure: the caller drops the frame (Raft retransmits) or fails the request.
    pub fn queue(&mut self, frame: &Frame) -> bool {
        if self.to_send.len() - self.sent > CONNECTION_SEND_BYTES_MAX {
            return false;
        }
        wire::encode(frame, &mut self.to_send);
        true
    }

    /// Queues an `Events` frame (see [`Connection::queue`]).
    pub fn queue_events(&mut self, watch: u64, events: &[&crate::core::state::Event]) -> bool {
        if self.to_send.len() - self.sent > CONNECTION_SEND_BYTES_MAX {
            return false;
        }
        wire::encode_events(watch, events, &mut self.to_send);
        true
    }

    /// Writes as much as the socket takes. Returns an error text if the connection failed.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.tls.is_some() {
            self.flush_tls()?;
        } else {
            // Bounded: each round writes at least one byte or stops.
            while self.sent < self.to_send.len() {
                match self.stream.write(&self.to_send[self.sent..]) {
                    Ok(0) => return Err("the socket accepts no more bytes".into()),
                    Ok(count) => self.sent += count,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error.to_string()),
                }
            }
        }
        if self.sent == self.to_send.len() {
            self.to_send.clear();
            self.sent = 0;
        } else if self.sent > 1024 * 1024 {
            self.to_send.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    /// Moves queued frames into the TLS session (which holds at most its buffer limit) and
    /// its records onto the socket.
    fn flush_tls(&mut self) -> Result<(), String> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        // Bounded: each round moves bytes into the session or onto the socket, or stops.
        loop {
            let mut moved = false;
            if self.sent < self.to_send.len() {
                match tls.writer().write(&self.to_send[self.sent..]) {
                    Ok(count) => {
                        self.sent += count;
                        moved |= count > 0;
                    }
                    Err(error) => return Err(format!("TLS: {error}")),
                }
            }
            if tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(0) => return Err("the socket accepts no more bytes".into()),
                    Ok(_) => moved = true,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(error) if error.kind() == ErrorKind::Interrupted => moved = true,
                    Err(error) => return Err(error.to_string()),
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending_output_bytes(&self) -> usize {
        self.to_send.len() - self.sent
    }

    /// Whether output is queued (frames, or TLS records such as a handshake's).
    pub fn has_pending_output(&self) -> bool {
        self.sent < self.to_send.len() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }
}
