//! Byte streams of either leg, plain TCP or TLS.
//!
//! Plain TCP is kept apart from TLS so that its halves read and write the
//! socket directly. `tokio::io::split` takes a lock on every call, which
//! only a TLS session needs, because its reader and writer share state.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One leg after negotiation.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<dyn Io>),
}

pub enum IoReader {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<Box<dyn Io>>),
}

pub enum IoWriter {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<Box<dyn Io>>),
}

impl Stream {
    pub fn tls(stream: impl Io + 'static) -> Self {
        Stream::Tls(Box::new(stream))
    }

    pub fn split(self) -> (IoReader, IoWriter) {
        match self {
            Stream::Plain(tcp) => {
                let (reader, writer) = tcp.into_split();
                (IoReader::Plain(reader), IoWriter::Plain(writer))
            }
            Stream::Tls(tls) => {
                let (reader, writer) = tokio::io::split(tls);
                (IoReader::Tls(reader), IoWriter::Tls(writer))
            }
        }
    }
}

/// Forwards every `AsyncRead` and `AsyncWrite` call to the variant inside.
macro_rules! delegate {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            Self::Plain($inner) => $call,
            Self::Tls($inner) => $call,
        }
    };
}

macro_rules! impl_async_read {
    ($type:ty) => {
        impl AsyncRead for $type {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                delegate!(self.get_mut(), inner => Pin::new(inner).poll_read(cx, buf))
            }
        }
    };
}

macro_rules! impl_async_write {
    ($type:ty) => {
        impl AsyncWrite for $type {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                delegate!(self.get_mut(), inner => Pin::new(inner).poll_write(cx, buf))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                delegate!(self.get_mut(), inner => Pin::new(inner).poll_flush(cx))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                delegate!(self.get_mut(), inner => Pin::new(inner).poll_shutdown(cx))
            }
        }
    };
}

impl_async_read!(Stream);
impl_async_write!(Stream);
impl_async_read!(IoReader);
impl_async_write!(IoWriter);
