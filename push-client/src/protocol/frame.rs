//! Splitting a byte stream into frames.
//!
//! A frame is a 4-byte big-endian body length followed by the body. The body
//! starts with a [`FrameHeader`]: the message kind and the request id that
//! lets a client pipeline several requests and match the replies.
//!
//! As in mini-redis, finding a frame is separate from parsing it: [`check`]
//! only answers "is a whole frame buffered yet?", and a partial frame is a
//! normal state rather than an error. The size limit is enforced on the
//! length prefix alone, before a single byte of the body is buffered.

use thiserror::Error;

use super::wire::{DecodeError, Reader, Writer};

/// Bytes taken by the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Bytes taken by the header at the start of every body.
pub const HEADER_LEN: usize = 5;

/// Why a frame cannot be accepted or produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
}

/// Looks for one whole frame at the start of `buffer`.
///
/// Returns `Ok(None)` while more bytes are needed, or `Ok(Some(total))` with
/// the frame's total length (prefix included) once it is all there. The body
/// is `buffer[LENGTH_PREFIX_LEN..total]`.
pub fn check(buffer: &[u8], max_body: u32) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Ok(None);
    };
    let body_len = u32::from_be_bytes(*prefix);
    if body_len > max_body {
        return Err(FrameError::TooLarge {
            len: u64::from(body_len),
            max: max_body,
        });
    }
    // u32 always fits in usize on the 32- and 64-bit targets we build for.
    let total = LENGTH_PREFIX_LEN + body_len as usize;
    Ok((buffer.len() >= total).then_some(total))
}

/// The first fields of every body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: u8,
    pub request_id: u32,
}

impl FrameHeader {
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            kind: reader.u8("message kind")?,
            request_id: reader.u32("request id")?,
        })
    }

    pub fn write(self, writer: &mut Writer<'_>) {
        writer.u8(self.kind);
        writer.u32(self.request_id);
    }
}

/// Appends one frame to `out`, with the body written by `write_body`.
///
/// The length prefix is patched in afterwards, so bodies are encoded straight
/// into the output buffer without an intermediate copy. On error `out` is left
/// as it was.
pub fn encode<E>(
    out: &mut Vec<u8>,
    max_body: u32,
    write_body: impl FnOnce(&mut Writer<'_>) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<FrameError>,
{
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
    if let Err(error) = write_body(&mut Writer::new(out)) {
        out.truncate(start);
        return Err(error);
    }
    let body_len = out.len() - start - LENGTH_PREFIX_LEN;
    match u32::try_from(body_len) {
        Ok(len) if len <= max_body => {
            out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(FrameError::TooLarge {
                len: body_len as u64,
                max: max_body,
            }
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_prefix_needs_more() {
        assert_eq!(check(&[0, 0], 10), Ok(None));
    }

    #[test]
    fn partial_body_needs_more() {
        assert_eq!(check(&[0, 0, 0, 3, 1, 2], 10), Ok(None));
    }

    #[test]
    fn whole_frame_is_found() {
        assert_eq!(check(&[0, 0, 0, 2, 1, 2, 99], 10), Ok(Some(6)));
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        assert_eq!(
            check(&[0xff, 0xff, 0xff, 0xff], 1024),
            Err(FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: 1024
            })
        );
    }

    #[test]
    fn encode_refuses_oversized_body_and_leaves_buffer_untouched() {
        let mut out = vec![7];
        let result = encode::<FrameError>(&mut out, 3, |w| {
            w.u32(1);
            Ok(())
        });
        assert_eq!(result, Err(FrameError::TooLarge { len: 4, max: 3 }));
        assert_eq!(out, vec![7]);
    }
}
