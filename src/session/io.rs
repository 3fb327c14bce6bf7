//! Byte streams of either leg, plain TCP or TLS, behind one trait object.

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type BoxedIo = Box<dyn Io>;
pub type IoReader = ReadHalf<BoxedIo>;
pub type IoWriter = WriteHalf<BoxedIo>;
