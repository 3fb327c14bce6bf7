//! Typed-message framing: one type byte, then a self-inclusive 32-bit length.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest length field Postgres accepts for any message: 1 GiB - 1.
pub const MAX_POSTGRES_MESSAGE_LENGTH: usize = (1 << 30) - 1;

/// Bytes requested from the socket per read when the buffer runs low.
const READ_CHUNK: usize = 16 * 1024;

/// One complete protocol message, header included.
#[derive(Debug)]
pub struct Frame {
    pub tag: u8,
    /// The whole message: type byte, length and body.
    pub bytes: BytesMut,
}

impl Frame {
    /// Message body, after the type byte and the length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }
}

/// One complete protocol message borrowed from a buffer, header included.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub tag: u8,
    pub bytes: &'a [u8],
}

impl<'a> Message<'a> {
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[5..]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("invalid message length {0}")]
    InvalidLength(i64),
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads whole frames from a byte stream into an owned buffer.
///
/// `next_frame` is cancel-safe: bytes already read stay in the reader's
/// buffer, so it may be used in `tokio::select!`.
pub struct FrameReader<R> {
    inner: R,
    buffer: BytesMut,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        FrameReader { inner, buffer: BytesMut::with_capacity(READ_CHUNK), limit }
    }

    /// Starts with bytes that were read before this reader existed.
    pub fn with_buffer(inner: R, limit: usize, buffer: BytesMut) -> Self {
        FrameReader { inner, buffer, limit }
    }

    /// Returns the next frame, or `None` at a clean end of stream.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(frame) = self.split_frame()? {
                return Ok(Some(frame));
            }
            // Keep room for a full socket read: after frames were split off, the
            // buffer may have little spare capacity left.
            if self.buffer.capacity() - self.buffer.len() < READ_CHUNK / 2 {
                self.buffer.reserve(READ_CHUNK);
            }
            let read = self.inner.read_buf(&mut self.buffer).await?;
            if read == 0 {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Waits until a complete frame is buffered, leaving it in place. Returns
    /// `false` at a clean end of stream. With [`Self::frame_at`] and
    /// [`Self::consume`], this lets a relay forward buffered frames without
    /// splitting or copying them.
    pub async fn fill(&mut self) -> Result<bool, FrameError> {
        loop {
            if self.frame_at(0)?.is_some() {
                return Ok(true);
            }
            self.reserve_for_next_read()?;
            if self.inner.read_buf(&mut self.buffer).await? == 0 {
                if self.buffer.is_empty() {
                    return Ok(false);
                }
                return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Returns the bytes read and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Tag and total length of the frame starting at `offset` of the buffered
    /// bytes, or `None` when it is not complete yet.
    pub fn frame_at(&self, offset: usize) -> Result<Option<(u8, usize)>, FrameError> {
        complete_frame(self.buffer.get(offset..).unwrap_or_default(), self.limit)
    }

    /// Returns the body size limit for frames not yet consumed.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Makes room for the rest of a frame whose header is buffered, which the
    /// limit bounds, or else for a full socket read.
    fn reserve_for_next_read(&mut self) -> Result<(), FrameError> {
        if let Some(total) = announced_total(&self.buffer, self.limit)? {
            if total > self.buffer.len() {
                self.buffer.reserve(total - self.buffer.len());
                return Ok(());
            }
        }
        if self.buffer.capacity() - self.buffer.len() < READ_CHUNK / 2 {
            self.buffer.reserve(READ_CHUNK);
        }
        Ok(())
    }

    /// Drops the first `n` buffered bytes, which the caller has handled.
    pub fn consume(&mut self, n: usize) {
        self.buffer.advance(n);
    }

    /// Changes the body size limit for frames not yet split off.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    fn split_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(total) = announced_total(&self.buffer, self.limit)? else {
            return Ok(None);
        };
        if self.buffer.len() < total {
            // Reserve only up to what the header announced, which the limit bounds.
            self.buffer.reserve(total - self.buffer.len());
            return Ok(None);
        }
        let bytes = self.buffer.split_to(total);
        Ok(Some(Frame { tag: bytes[0], bytes }))
    }
}

/// Tag and total length of the frame at the start of `bytes`, or `None`
/// when `bytes` holds only part of it.
pub fn complete_frame(bytes: &[u8], limit: usize) -> Result<Option<(u8, usize)>, FrameError> {
    let Some(total) = announced_total(bytes, limit)? else {
        return Ok(None);
    };
    Ok((bytes.len() >= total).then_some((bytes[0], total)))
}

/// Total length, type byte included, that the header at the start of
/// `bytes` announces, or `None` before the whole header is there.
fn announced_total(bytes: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    let Some(header) = bytes.get(..5) else {
        return Ok(None);
    };
    let declared = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    Ok(Some(checked_length(declared, limit)? + 1))
}

/// Validates a self-inclusive length field against the limit on the body.
fn checked_length(declared: i32, limit: usize) -> Result<usize, FrameError> {
    if declared < 4 {
        return Err(FrameError::InvalidLength(declared.into()));
    }
    let length = usize::try_from(declared).map_err(|_| FrameError::InvalidLength(declared.into()))?;
    // Postgres itself never accepts a message of 1 GiB or more (PQ_LARGE_MESSAGE_LIMIT).
    if length > MAX_POSTGRES_MESSAGE_LENGTH {
        return Err(FrameError::InvalidLength(declared.into()));
    }
    if length - 4 > limit {
        return Err(FrameError::TooLarge { size: length - 4, limit });
    }
    Ok(length)
}

/// Appends a message with `tag` and `body`, computing the length with checked arithmetic.
pub fn encode(tag: u8, body: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    let length = body
        .len()
        .checked_add(4)
        .and_then(|n| i32::try_from(n).ok())
        .ok_or(FrameError::TooLarge { size: body.len(), limit: i32::MAX as usize - 4 })?;
    out.reserve(body.len() + 5);
    out.extend_from_slice(&[tag]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_split_across_reads() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 1024);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(b"Q\0\0\0\x0dSEL").await.unwrap();
            client.write_all(b"ECT 1\0S\0\0\0\x04").await.unwrap();
        });
        let first = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(first.tag, b'Q');
        assert_eq!(first.body(), b"SELECT 1\0");
        let second = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(second.tag, b'S');
        assert!(reader.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversize_length_rejected_before_allocation() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 1024);
        use tokio::io::AsyncWriteExt;
        client.write_all(b"Q\x00\x10\x00\x00").await.unwrap();
        let error = reader.next_frame().await.unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }));
        assert!(reader.buffer.capacity() < 1 << 20);
    }

    #[tokio::test]
    async fn length_below_four_rejected() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, 1024);
        use tokio::io::AsyncWriteExt;
        client.write_all(b"S\0\0\0\x03").await.unwrap();
        assert!(matches!(reader.next_frame().await, Err(FrameError::InvalidLength(3))));
    }

    #[test]
    fn encoder_rejects_lengths_past_i32() {
        let body = vec![0u8; 16];
        let mut out = BytesMut::new();
        encode(b'Q', &body, &mut out).unwrap();
        assert_eq!(&out[1..5], &20i32.to_be_bytes());
        assert!(checked_length(0x3fff_ffff, usize::MAX).is_ok());
        assert!(matches!(checked_length(0x4000_0000, usize::MAX), Err(FrameError::InvalidLength(_))));
    }
}
