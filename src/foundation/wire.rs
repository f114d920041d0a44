//! A minimal binary framing for the large, frequent messages between processes (a fit over
//! shards sends parameters and receives statistics every EM iteration): a 4-byte tag, then
//! fields in order — unsigned integers as u64, arrays as a u64 length and their elements, all
//! little-endian. Floats travel bit for bit, so a value decoded on another machine is the value
//! encoded. Small, rare messages go as JSON instead (with `float_roundtrip`, as exact).

use crate::foundation::error::{Error, Result};

/// Builds one message.
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A message of kind `tag`.
    pub fn new(tag: &[u8; 4]) -> Writer {
        Writer { buf: tag.to_vec() }
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn usize(&mut self, v: usize) -> &mut Self {
        self.u64(v as u64)
    }
    pub fn f64s(&mut self, v: &[f64]) -> &mut Self {
        self.usize(v.len());
        self.buf.reserve(v.len() * 8);
        v.iter().for_each(|x| self.buf.extend_from_slice(&x.to_le_bytes()));
        self
    }
    pub fn u32s(&mut self, v: &[u32]) -> &mut Self {
        self.usize(v.len());
        self.buf.reserve(v.len() * 4);
        v.iter().for_each(|x| self.buf.extend_from_slice(&x.to_le_bytes()));
        self
    }
    pub fn bools(&mut self, v: &[bool]) -> &mut Self {
        self.usize(v.len());
        self.buf.extend(v.iter().map(|&b| b as u8));
        self
    }
    pub fn usizes(&mut self, v: &[usize]) -> &mut Self {
        self.usize(v.len());
        v.iter().for_each(|&x| {
            self.u64(x as u64);
        });
        self
    }
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads one message; every read checks the bounds, so a damaged message is an error.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `buf`, which must be a message of kind `tag`.
    pub fn new(buf: &'a [u8], tag: &[u8; 4]) -> Result<Reader<'a>> {
        if buf.get(..4) != Some(tag.as_slice()) {
            return Err(damaged(format!("expected a {:?} message", String::from_utf8_lossy(tag))));
        }
        Ok(Reader { buf, at: 4 })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| damaged("truncated"))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    pub fn usize(&mut self) -> Result<usize> {
        usize::try_from(self.u64()?).map_err(|_| damaged("a length past this machine's address space"))
    }
    fn len(&mut self, width: usize) -> Result<usize> {
        let n = self.usize()?;
        n.checked_mul(width)
            .filter(|&bytes| bytes <= self.buf.len() - self.at)
            .map(|_| n)
            .ok_or_else(|| damaged("truncated"))
    }
    pub fn f64s(&mut self) -> Result<Vec<f64>> {
        let n = self.len(8)?;
        let b = self.take(n * 8)?;
        Ok(b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
    pub fn bools(&mut self) -> Result<Vec<bool>> {
        let n = self.len(1)?;
        Ok(self.take(n)?.iter().map(|&b| b != 0).collect())
    }
    pub fn usizes(&mut self) -> Result<Vec<usize>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.usize()).collect()
    }
    /// Checks that the whole message was read.
    pub fn end(self) -> Result<()> {
        if self.at == self.buf.len() { Ok(()) } else { Err(damaged("trailing bytes")) }
    }
}

/// The error for a message that cannot be read (`what` says how).
pub fn damaged(what: impl std::fmt::Display) -> Error {
    Error::config(format!("a message between segmix processes is damaged ({what}); are both ends the same version?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bit_for_bit_and_refuses_damage() {
        let floats = [0.1, -0.0, f64::MIN_POSITIVE, f64::NAN, 1e308];
        let msg = Writer::new(b"TEST").usize(7).f64s(&floats).u32s(&[1, u32::MAX]).bools(&[true, false]).finish();
        let mut r = Reader::new(&msg, b"TEST").unwrap();
        assert_eq!(r.usize().unwrap(), 7);
        let back = r.f64s().unwrap();
        assert!(back.iter().zip(&floats).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(r.u32s().unwrap(), vec![1, u32::MAX]);
        assert_eq!(r.bools().unwrap(), vec![true, false]);
        r.end().unwrap();
        assert!(Reader::new(&msg, b"NOPE").is_err());
        for cut in [4, 10, 20, msg.len() - 1] {
            let mut r = Reader::new(&msg[..cut], b"TEST").unwrap();
            let read = (|| -> Result<()> {
                r.usize()?;
                r.f64s()?;
                r.u32s()?;
                r.bools()?;
                Ok(())
            })();
            assert!(read.is_err(), "cut at {cut}");
        }
        // A length field claiming more than the message holds is an error, not an allocation.
        let mut huge = Writer::new(b"TEST").u64(u64::MAX / 2).finish();
        huge.extend_from_slice(&[0; 16]);
        assert!(Reader::new(&huge, b"TEST").unwrap().f64s().is_err());
    }
}
