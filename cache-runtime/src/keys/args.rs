//! The arguments of a hashed key: their JSON array, streamed into an MD5 digest or written
//! into a small buffer on the stack (what a thread's hot set is asked with).

use std::io::Write;

use md5::{Digest, Md5};
use serde::Serialize;

/// One hashed argument, type-erased so that any number of them, of any types, stream into
/// the digest without a tuple (serde stops at 16) and without an intermediate string.
pub struct Arg<'a>(&'a dyn ArgJson);

trait ArgJson {
    fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error>;
}

impl<T: Serialize + ?Sized> ArgJson for T {
    fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }
}

impl<'a> Arg<'a> {
    /// Wraps a reference to an argument.
    pub fn new<T: Serialize>(value: &'a T) -> Self {
        Arg(value)
    }
}

/// The MD5 of the JSON array of `args`, streamed from the serializer into the digest.
pub(super) fn digest(args: &[Arg<'_>]) -> Result<[u8; 16], serde_json::Error> {
    let mut digest = DigestWriter(Md5::new());
    write_array(&mut digest, args)?;
    Ok(digest.0.finalize().into())
}

/// The MD5 of a JSON array [`write_args`] wrote.
pub(super) fn digest_json(json: &[u8]) -> [u8; 16] {
    Md5::digest(json).into()
}

/// Writes the JSON array of `args` (`[a,b]`) into `out`, streamed from the serializer.
fn write_array(out: &mut dyn Write, args: &[Arg<'_>]) -> Result<(), serde_json::Error> {
    out.write_all(b"[").map_err(serde_json::Error::io)?;
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.write_all(b",").map_err(serde_json::Error::io)?;
        }
        arg.0.write_json(out)?;
    }
    out.write_all(b"]").map_err(serde_json::Error::io)
}

/// Writes the JSON array of `args` (what [`digest`] digests) into `inline`: `Ok(false)`
/// when it does not fit there.
pub(crate) fn write_args(inline: &mut Inline, args: &[Arg<'_>]) -> Result<bool, serde_json::Error> {
    let mut out = InlineWriter {
        inline,
        overflowed: false,
    };
    match write_array(&mut out, args) {
        Ok(()) => Ok(true),
        Err(_) if out.overflowed => Ok(false),
        Err(e) => Err(e),
    }
}

/// Argument JSON up to this long is written inline (and a hot set can be asked with it);
/// longer arguments are streamed into the digest.
pub(crate) const INLINE: usize = 64;

/// The arguments' JSON of a hashed key, written where it costs no allocation, up to
/// [`INLINE`] bytes. The buffer past what was written stays zeroed.
pub(crate) struct Inline {
    bytes: [u8; INLINE],
    len: u8,
}

impl Inline {
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; INLINE],
            len: 0,
        }
    }

    /// Everything written.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// What was written, followed by zeros up to a multiple of 8 bytes (or the end of the
    /// buffer): whole words to hash without copying the last few bytes apart.
    pub(crate) fn padded_words(&self) -> &[u8] {
        let words = usize::from(self.len).div_ceil(8) * 8;
        &self.bytes[..words.min(INLINE)]
    }

    /// Appends `data`; false (and nothing written) when it does not fit.
    pub(crate) fn push(&mut self, data: &[u8]) -> bool {
        let start = usize::from(self.len);
        let Some(end) = start.checked_add(data.len()).filter(|&end| end <= INLINE) else {
            return false;
        };
        self.bytes[start..end].copy_from_slice(data);
        // `end <= INLINE`, which fits a u8.
        self.len = end as u8;
        true
    }
}

/// Writes serializer output into an [`Inline`], failing when it does not fit.
struct InlineWriter<'a> {
    inline: &'a mut Inline,
    overflowed: bool,
}

impl Write for InlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.inline.push(buf) {
            Ok(buf.len())
        } else {
            self.overflowed = true;
            Err(std::io::ErrorKind::WriteZero.into())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lower-case hex of a digest, built on the stack: pushing 32 `char`s one by one costs more
/// than the digest's last block.
pub(super) fn hex(sum: &[u8; 16]) -> HexDigest {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(sum) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    HexDigest(out)
}

/// 32 ASCII hex digits.
pub(super) struct HexDigest([u8; 32]);

impl std::ops::Deref for HexDigest {
    type Target = str;
    fn deref(&self) -> &str {
        // Only ASCII digits and letters were written, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Feeds serializer output straight into the digest, so no intermediate string is built.
struct DigestWriter(Md5);

impl Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_md5_of_the_json_array() {
        let sum = digest(&[Arg::new(&"ab"), Arg::new(&"c")]).unwrap();
        assert_eq!(sum, <[u8; 16]>::from(Md5::digest(br#"["ab","c"]"#)));
        assert_eq!(digest(&[]).unwrap(), digest_json(b"[]"));
    }

    #[test]
    fn the_digest_is_the_json_of_the_tuple() {
        let args = (1u32, "x", vec![Some(2.5)], ());
        let erased = digest(&[
            Arg::new(&args.0),
            Arg::new(&args.1),
            Arg::new(&args.2),
            Arg::new(&args.3),
        ])
        .unwrap();
        assert_eq!(erased, digest_json(&serde_json::to_vec(&args).unwrap()));
    }

    #[test]
    fn arguments_too_long_for_inline_say_so() {
        let long = "x".repeat(200);
        let mut inline = Inline::new();
        assert!(!write_args(&mut inline, &[Arg::new(&long)]).unwrap());
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 2u8);
        assert!(write_args(&mut Inline::new(), &[Arg::new(&map)]).is_err());
        let mut empty = Inline::new();
        assert!(write_args(&mut empty, &[]).unwrap());
        assert_eq!(empty.as_slice(), b"[]");
    }

    #[test]
    fn inline_refuses_what_does_not_fit() {
        let mut inline = Inline::new();
        assert!(inline.push(b"ab"));
        assert!(inline.push(b"[1]"));
        assert_eq!(inline.as_slice(), b"ab[1]");
        assert!(!inline.push(&[0; INLINE]));
        assert_eq!(inline.as_slice(), b"ab[1]");
        assert_eq!(inline.padded_words(), b"ab[1]\0\0\0");
    }
}
