//! Field encodings shared by requests and replies.
//!
//! All integers are big-endian. A string is a `u16` byte length followed by
//! UTF-8; a list is a `u16` count followed by that many strings; a blob is a
//! `u32` byte length followed by raw bytes. These few shapes are enough for
//! every message, and each is trivial to produce with PHP's `pack()`.

use thiserror::Error;

use super::frame::FrameError;

/// Why a frame body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("the body ended while reading {0}")]
    Truncated(&'static str),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("unknown message kind 0x{0:02x}")]
    UnknownKind(u8),
    #[error("{0} unexpected bytes after the last field")]
    TrailingBytes(usize),
    #[error("unknown error code {0}")]
    UnknownErrorCode(u16),
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
}

/// Reads fields from a body, front to back.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take_array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take_array(what)?))
    }

    pub fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.u16(what)?;
        let bytes = self.take(usize::from(len), what)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8(what))
    }

    pub fn list(&mut self, what: &'static str) -> Result<Vec<&'a str>, DecodeError> {
        let count = self.u16(what)?;
        // Each entry needs at least its 2-byte length, so a count larger than
        // that allows is a lie; checking first keeps a hostile count from
        // reserving memory for entries that cannot be there.
        if usize::from(count) * 2 > self.rest.len() {
            return Err(DecodeError::Truncated(what));
        }
        (0..count).map(|_| self.str(what)).collect()
    }

    pub fn blob(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated(what))?;
        self.take(len, what)
    }

    /// Succeeds only if every byte of the body was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes(extra)),
        }
    }
}

/// Why a value cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("{what} is {len} long; the protocol allows at most {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Appends fields to a body.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    pub fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub fn str(&mut self, what: &'static str, value: &str) -> Result<(), EncodeError> {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::TooLong {
            what,
            len: value.len(),
            max: usize::from(u16::MAX),
        })?;
        self.u16(len);
        self.out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    pub fn list<S: AsRef<str>>(
        &mut self,
        what: &'static str,
        items: &[S],
    ) -> Result<(), EncodeError> {
        let count = u16::try_from(items.len()).map_err(|_| EncodeError::TooLong {
            what,
            len: items.len(),
            max: usize::from(u16::MAX),
        })?;
        self.u16(count);
        items
            .iter()
            .try_for_each(|item| self.str(what, item.as_ref()))
    }

    pub fn blob(&mut self, what: &'static str, value: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(value.len()).map_err(|_| EncodeError::TooLong {
            what,
            len: value.len(),
            max: u32::MAX as usize,
        })?;
        self.u32(len);
        self.out.extend_from_slice(value);
        Ok(())
    }
}
