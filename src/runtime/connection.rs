//! One TCP connection of the event loop: non-blocking reads into a bounded buffer, frames
//! queued for writing with a byte bound, and who is on the other end.

use std::io::{ErrorKind, Read, Write};

use mio::net::TcpStream;

use super::wire::{self, Decoded, Frame};
use crate::limits::{
    CONNECTION_READ_BYTES_PER_TURN_MAX, CONNECTION_SEND_BYTES_MAX, CONNECTION_SEND_PAUSE_BYTES,
    FRAME_BYTES_MAX,
};
use crate::types::NodeId;

/// Initial size of a connection's receive buffer, and the free space kept before a read; the
/// buffer doubles to fit large frames and returns to this size once drained.
const READ_CHUNK_BYTES: usize = 4 * 1024;

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
    /// Bytes `[0, consumed)` of the receive buffer were decoded already.
    consumed: usize,
    to_send: Vec<u8>,
    sent: usize,
    /// Where a frame starts in `to_send`, at or before `sent` (frames before it were
    /// written whole).
    frame_start: usize,
    /// Requests received on this connection and not yet answered (bounded by
    /// `PENDING_REQUESTS_PER_CONNECTION_MAX`).
    pub in_flight: usize,
    /// Not read from while its unsent output is over the send pause (see
    /// [`Connection::over_send_pause`]); the event loop resumes it once that drains.
    pub paused: bool,
    /// Listed in the event loop's set of connections to read again next turn.
    pub listed_backlog: bool,
    /// Since when its unsent output has stayed over the send pause (a connection that does
    /// not drain for `CONNECTION_STALL_MS_MAX` is closed).
    pub backlogged_since: Option<std::time::Instant>,
    /// Linearizable reads confirmed while the connection was over the send pause: served
    /// once it drains (bounded by `PENDING_REQUESTS_PER_CONNECTION_MAX`, as every request
    /// of the connection in flight).
    pub parked_reads: Vec<u64>,
    /// Since when the connection is being closed for not reading its replies (it keeps its
    /// slot a moment to write why).
    pub closing_since: Option<std::time::Instant>,
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
            consumed: 0,
            to_send: Vec::new(),
            sent: 0,
            frame_start: 0,
            tls: None,
            first_bytes_checked: false,
            in_flight: 0,
            paused: false,
            listed_backlog: false,
            backlogged_since: None,
            parked_reads: Vec::new(),
            closing_since: None,
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

    /// Reads what the socket has, up to a turn's budget, into the receive buffer (frames are
    /// then taken one at a time with [`Connection::next_frame`]). Reads nothing while a
    /// turn's worth of bytes is still undecoded: the caller is taking frames more slowly
    /// than the other end sends them, and the rest waits in the kernel, as TCP intends.
    pub fn fill(&mut self) -> ReadOutcome {
        self.received.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        if self.filled == 0 && self.received.len() > RECEIVE_BUFFER_KEEP_BYTES {
            self.received = vec![0; READ_CHUNK_BYTES];
        }
        let mut read_this_turn = 0usize;
        // Bounded: each round reads at least one byte, and at most
        // CONNECTION_READ_BYTES_PER_TURN_MAX per turn, so one busy connection cannot starve
        // the others or the ticks.
        loop {
            let whole_frame_waiting = frame_length_at(&self.received[..self.filled], 0)
                .is_some_and(|length| length <= self.filled);
            if read_this_turn >= CONNECTION_READ_BYTES_PER_TURN_MAX
                || (self.filled >= CONNECTION_READ_BYTES_PER_TURN_MAX && whole_frame_waiting)
            {
                return ReadOutcome::MoreAvailable;
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
                Err(error) if error.kind() == ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return ReadOutcome::Closed(error.to_string()),
            }
        }
    }

    /// The next complete frame received, if any (`Err`: the other end broke the protocol,
    /// and the text says how).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        match wire::decode(&self.received[self.consumed..self.filled]) {
            Decoded::Frame(frame, used) => {
                self.consumed += used;
                Ok(Some(frame))
            }
            Decoded::NeedMore => Ok(None),
            Decoded::Invalid(why) => Err(why),
        }
    }

    /// Whether received bytes wait to be decoded (a frame, or part of one).
    pub fn has_undecoded_input(&self) -> bool {
        self.consumed < self.filled
    }

    /// Whether this client connection has so much output unsent that the member takes no
    /// more of its requests and computes no more replies for it until it drains: its
    /// requests wait in the kernel, and nothing is computed only to be dropped.
    pub fn over_send_pause(&self) -> bool {
        self.pending_output_bytes() >= CONNECTION_SEND_PAUSE_BYTES
    }

    /// Drops every queued frame not yet started on the wire (the one being written is
    /// finished first, so that the stream stays well-formed), then queues `last` and closes
    /// the connection once it is written: what a connection that does not read its replies
    /// is told before it is closed. Returns the bytes freed.
    pub fn discard_unsent_then(&mut self, last: &Frame) -> usize {
        self.advance_frame_start();
        let keep = match frame_length_at(&self.to_send, self.frame_start) {
            Some(length) if self.frame_start < self.sent => self.frame_start + length,
            _ => self.sent.max(self.frame_start),
        }
        .min(self.to_send.len());
        let freed = self.to_send.len() - keep;
        self.to_send.truncate(keep);
        self.to_send.shrink_to(keep + 4096);
        wire::encode(last, &mut self.to_send);
        self.close_after_flush = true;
        freed
    }

    /// Moves `frame_start` past every frame written whole.
    fn advance_frame_start(&mut self) {
        // Bounded: each round passes one whole frame of the queue.
        while let Some(length) = frame_length_at(&self.to_send, self.frame_start) {
            if self.frame_start + length > self.sent {
                break;
            }
            self.frame_start += length;
        }
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
            self.frame_start = 0;
        } else if self.sent > 1024 * 1024 {
            // Compacted at a frame's start, so that the unsent frames stay findable.
            self.advance_frame_start();
            self.to_send.drain(..self.frame_start);
            self.sent -= self.frame_start;
            self.frame_start = 0;
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

/// The length of the whole frame (header included) starting at `at` in `bytes`, if a frame
/// header is there.
fn frame_length_at(bytes: &[u8], at: usize) -> Option<usize> {
    let header = bytes.get(at..at + 4)?;
    Some(4 + u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize)
}
