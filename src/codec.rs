//! Little-endian binary encoding helpers shared by every format accord writes: the WAL, the
//! snapshot files, replicated commands and the wire protocol.
//!
//! Reading never panics and never allocates more than the input can back: every length is
//! checked against the bytes that remain before anything is taken.

/// Appends fixed-size and length-prefixed fields to a buffer.
pub trait Put {
    /// Appends one byte.
    fn put_u8(&mut self, value: u8);
    /// Appends a `u32`.
    fn put_u32(&mut self, value: u32);
    /// Appends a `u64`.
    fn put_u64(&mut self, value: u64);
    /// Appends a `u32` length and then the bytes.
    fn put_bytes(&mut self, bytes: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.put_u32(bytes.len() as u32);
        self.extend_from_slice(bytes);
    }
}

/// Reads fields from a byte slice, failing (never panicking) when it runs out.
pub struct Reader<'a> {
    /// The bytes not read yet.
    pub bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Takes the next `count` bytes.
    pub fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < count {
            return Err(format!(
                "truncated: needed {count} bytes, {} remain",
                self.bytes.len()
            ));
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// Takes a `u32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Takes a `u64`.
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Takes a length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], String> {
        let length = self.u32()? as usize;
        if length > max {
            return Err(format!(
                "a field of {length} bytes exceeds the limit of {max}"
            ));
        }
        self.take(length)
    }

    /// Takes everything that remains.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    /// A count-prefixed list of `u64`s, at most `max` of them.
    pub fn ids(&mut self, max: usize) -> Result<Vec<u64>, String> {
        let count = self.u32()? as usize;
        if count > max {
            return Err(format!("{count} members exceed the limit of {max}"));
        }
        (0..count).map(|_| self.u64()).collect()
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), String> {
        match self.bytes.len() {
            0 => Ok(()),
            extra => Err(format!("{extra} unexpected bytes at the end")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_fails_without_panicking() {
        let mut out = Vec::new();
        out.put_u8(7);
        out.put_u32(70_000);
        out.put_u64(u64::MAX);
        out.put_bytes(b"key");
        let mut reader = Reader::new(&out);
        assert_eq!(reader.u8().unwrap(), 7);
        assert_eq!(reader.u32().unwrap(), 70_000);
        assert_eq!(reader.u64().unwrap(), u64::MAX);
        assert_eq!(reader.bytes(16).unwrap(), b"key");
        assert!(reader.finish().is_ok());
        let mut short = Reader::new(&out[..3]);
        assert!(short.u32().is_err());
        let mut limited = Reader::new(&out[13..]);
        assert!(limited.bytes(2).is_err());
    }
}
