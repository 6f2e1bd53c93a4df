//! A deflate (RFC 1951) block walker: it decodes Huffman symbols only to skip over them and
//! produces no output. [`crate::pgzip`] uses it to find the final block of a stream that
//! libdeflate compressed, so it can splice independent streams into one.

/// Bit positions in a deflate stream (LSB-first within each byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinalBlock {
    /// The position of the final block's BFINAL bit (its first header bit).
    pub header_bit: usize,
    /// The position just past the final block's end-of-block code.
    pub end_bit: usize,
}

/// An LSB-first bit reader that keeps up to 63 bits in a register (libdeflate's refill trick).
struct Bits<'a> {
    data: &'a [u8],
    /// The next byte not yet in `buf`.
    next: usize,
    buf: u64,
    /// Valid bits in `buf`; bits above are zero or the stream's next bits, so OR-ing the same
    /// bytes in again is harmless.
    cnt: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            next: 0,
            buf: 0,
            cnt: 0,
        }
    }

    /// At least 56 valid bits afterwards; past the end of the data they read as zeros.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(w) = self.data.get(self.next..self.next + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.buf |= u64::from_le_bytes(b) << self.cnt;
            let n = (63 - self.cnt) >> 3;
            self.next += n as usize;
            self.cnt += n * 8;
        } else {
            while self.cnt <= 56 {
                let byte = self.data.get(self.next).copied().unwrap_or(0);
                self.buf |= u64::from(byte) << self.cnt;
                self.next += 1;
                self.cnt += 8;
            }
        }
    }

    /// Consume `n` (<= `cnt`) bits.
    #[inline(always)]
    fn skip(&mut self, n: u32) {
        self.buf >>= n;
        self.cnt -= n;
    }

    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        if self.cnt < n {
            self.refill();
        }
        let v = (self.buf & ((1u64 << n) - 1)) as u32;
        self.skip(n);
        v
    }

    /// The bit position of the next unread bit.
    fn pos(&self) -> usize {
        self.next * 8 - self.cnt as usize
    }

    /// Drop the bits left of the current byte.
    fn align(&mut self) {
        self.skip(self.cnt & 7);
    }

    /// Skip `n` whole bytes (at a byte boundary).
    fn skip_bytes(&mut self, n: usize) {
        let in_buf = (self.cnt / 8) as usize;
        if n <= in_buf {
            self.skip(n as u32 * 8);
        } else {
            self.next = self.next + n - in_buf;
            self.buf = 0;
            self.cnt = 0;
        }
    }

    fn overrun(&self) -> bool {
        self.pos() > self.data.len() * 8
    }
}

/// Longest code in deflate.
const MAX_BITS: u32 = 15;
const TABLE_SIZE: usize = 1 << MAX_BITS;

/// A single-level decoding table indexed by the next `bits` stream bits: entries are
/// `symbol << 4 | code length`, 0 where no code matches (incomplete codes are legal in deflate).
struct Table {
    entries: Box<[u16; TABLE_SIZE]>,
    mask: u64,
}

impl Table {
    fn new() -> Self {
        Table {
            entries: Box::new([0; TABLE_SIZE]),
            mask: 0,
        }
    }

    /// Canonical Huffman codes from code lengths; `None` if over-subscribed.
    fn build(&mut self, lens: &[u8]) -> Option<()> {
        let mut count = [0u32; 16];
        for &l in lens {
            count[usize::from(l & 15)] += 1;
        }
        count[0] = 0;
        let mut left: i64 = 1;
        for &c in &count[1..] {
            left = (left << 1) - i64::from(c);
            if left < 0 {
                return None;
            }
        }
        let max = (1..16).rev().find(|&l| count[l] > 0).unwrap_or(1);
        let mut next = [0u32; 16];
        for l in 2..16 {
            next[l] = (next[l - 1] + count[l - 1]) << 1;
        }
        let size = 1usize << max;
        self.mask = size as u64 - 1;
        let entries = &mut self.entries[..size];
        entries.fill(0);
        for (sym, &l) in lens.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let l = u32::from(l & 15);
            let code = next[l as usize];
            next[l as usize] += 1;
            // Codes are sent most significant bit first into an LSB-first stream.
            let rev = (code.reverse_bits() >> (32 - l)) as usize;
            let entry = ((sym as u16) << 4) | l as u16;
            for e in entries.iter_mut().skip(rev).step_by(1 << l) {
                *e = entry;
            }
        }
        Some(())
    }

    /// The next symbol; needs `b.cnt >= 15`.
    #[inline(always)]
    fn decode(&self, b: &mut Bits<'_>) -> Option<u16> {
        let e = self.entries[(b.buf & self.mask) as usize & (TABLE_SIZE - 1)];
        let len = u32::from(e & 15);
        if len == 0 || len > b.cnt {
            return None;
        }
        b.skip(len);
        Some(e >> 4)
    }
}

const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const CODELEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Reusable decoding tables (they are rebuilt for every dynamic block).
pub struct Walker {
    lit: Table,
    dist: Table,
    pre: Table,
    lens: Vec<u8>,
}

impl Default for Walker {
    fn default() -> Self {
        Self::new()
    }
}

impl Walker {
    /// A walker with empty tables.
    pub fn new() -> Self {
        Walker {
            lit: Table::new(),
            dist: Table::new(),
            pre: Table::new(),
            lens: Vec::with_capacity(320),
        }
    }

    /// Where the final block of the deflate stream in `data` starts and ends; `None` if the
    /// stream is malformed or has no final block within `data`.
    pub fn final_block(&mut self, data: &[u8]) -> Option<FinalBlock> {
        let mut b = Bits::new(data);
        loop {
            b.refill();
            let header_bit = b.pos();
            let last = b.take(1) == 1;
            match b.take(2) {
                0 => {
                    b.align();
                    let len = b.take(16);
                    let nlen = b.take(16);
                    if len != !nlen & 0xffff {
                        return None;
                    }
                    b.skip_bytes(len as usize);
                }
                1 => {
                    self.lens.clear();
                    self.lens.resize(288, 8);
                    self.lens[144..256].fill(9);
                    self.lens[256..280].fill(7);
                    self.lit.build(&self.lens)?;
                    self.dist.build(&[5; 30])?;
                    b = self.symbols(b)?;
                }
                2 => {
                    self.dynamic_tables(&mut b)?;
                    b = self.symbols(b)?;
                }
                _ => return None,
            }
            if b.overrun() {
                return None;
            }
            if last {
                return Some(FinalBlock {
                    header_bit,
                    end_bit: b.pos(),
                });
            }
        }
    }

    fn dynamic_tables(&mut self, b: &mut Bits<'_>) -> Option<()> {
        let hlit = b.take(5) as usize + 257;
        let hdist = b.take(5) as usize + 1;
        let hclen = b.take(4) as usize + 4;
        let mut pre = [0u8; 19];
        for &i in &CODELEN_ORDER[..hclen] {
            pre[i] = b.take(3) as u8;
        }
        self.pre.build(&pre)?;
        self.lens.clear();
        while self.lens.len() < hlit + hdist {
            b.refill();
            if b.overrun() {
                return None;
            }
            match self.pre.decode(b)? {
                s @ 0..=15 => self.lens.push(s as u8),
                16 => {
                    let prev = *self.lens.last()?;
                    let n = 3 + b.take(2) as usize;
                    self.lens.extend(std::iter::repeat_n(prev, n));
                }
                17 => {
                    let n = 3 + b.take(3) as usize;
                    self.lens.extend(std::iter::repeat_n(0, n));
                }
                _ => {
                    let n = 11 + b.take(7) as usize;
                    self.lens.extend(std::iter::repeat_n(0, n));
                }
            }
        }
        if self.lens.len() != hlit + hdist || self.lens[256] == 0 {
            return None;
        }
        self.lit.build(&self.lens[..hlit])?;
        self.dist.build(&self.lens[hlit..])?;
        Some(())
    }

    /// By value, so the bit buffer lives in registers for the hot loop.
    fn symbols<'a>(&self, mut b: Bits<'a>) -> Option<Bits<'a>> {
        let limit = b.data.len() + 8;
        loop {
            // 56 bits cover the longest item: code 15 + extra 5 + distance 15 + extra 13.
            b.refill();
            // A corrupt stream could loop long on zeros past the end: stop there. Checked on
            // every item: zeros past the end can decode as literals, which loop too.
            if b.next > limit {
                return None;
            }
            let sym = self.lit.decode(&mut b)?;
            if sym < 256 {
                // Two more literals fit without a refill most of the time.
                if b.cnt >= 30 {
                    let s2 = self.lit.decode(&mut b)?;
                    if s2 < 256 {
                        if b.cnt >= 15 {
                            let s3 = self.lit.decode(&mut b)?;
                            if s3 >= 256 {
                                self.after_literal(&mut b, s3)?;
                                if s3 == 256 {
                                    return Some(b);
                                }
                            }
                        }
                        continue;
                    }
                    if s2 == 256 {
                        return Some(b);
                    }
                    if b.cnt < 33 {
                        b.refill();
                    }
                    self.length_distance(&mut b, s2)?;
                }
                continue;
            }
            if sym == 256 {
                return Some(b);
            }
            self.length_distance(&mut b, sym)?;
        }
    }

    #[inline(always)]
    fn after_literal(&self, b: &mut Bits<'_>, sym: u16) -> Option<()> {
        if sym == 256 {
            return Some(());
        }
        b.refill();
        self.length_distance(b, sym)
    }

    /// Skip a length's extra bits, the distance code and its extra bits (needs 33 bits).
    #[inline(always)]
    fn length_distance(&self, b: &mut Bits<'_>, sym: u16) -> Option<()> {
        let extra = *LEN_EXTRA.get(usize::from(sym - 257))?;
        b.skip(u32::from(extra));
        let d = self.dist.decode(b)?;
        if d >= 30 {
            return None;
        }
        if d >= 4 {
            b.skip(u32::from(d / 2 - 1));
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, seed: u64) -> Vec<u8> {
        // Text-like data with repeats plus an incompressible stretch (stored blocks).
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x >> 60) == 0 {
                for _ in 0..(x % 3000) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    out.push(x as u8);
                }
            } else {
                let words: [&[u8]; 5] = [b"conda ", b"prefix ", b"/lib/", b"python3.11 ", b"\0\0"];
                out.extend_from_slice(words[(x % 5) as usize]);
            }
        }
        out.truncate(n);
        out
    }

    #[test]
    fn finds_the_final_block_of_libdeflate_streams() {
        let mut w = Walker::new();
        for (n, level) in [
            (0, 4),
            (1, 4),
            (10, 1),
            (300, 6),
            (70_000, 0),
            (200_000, 1),
            (1 << 20, 4),
            (1 << 20, 9),
            (1 << 20, 12),
        ] {
            let data = sample(n, n as u64 + 7);
            let lvl = libdeflater::CompressionLvl::new(level).expect("level");
            let mut c = libdeflater::Compressor::new(lvl);
            let mut out = vec![0u8; c.deflate_compress_bound(n)];
            let len = c.deflate_compress(&data, &mut out).expect("compress");
            out.truncate(len);
            let f = w.final_block(&out).expect("walks");
            assert_eq!(f.end_bit.div_ceil(8), len, "n={n} level={level}");
            assert_eq!(out[f.header_bit / 8] >> (f.header_bit % 8) & 1, 1);
        }
    }

    #[test]
    fn a_dynamic_block_whose_zeros_past_the_end_decode_as_literals_ends() {
        // Found by the deflate_walk fuzz target: the walk looped for ever on the zeros past the
        // end, which this block's literal code decodes as literals (the end check was only on
        // the length/distance path).
        let hex = [
            "a42e2e2f0000b0060000000000012400000000000000000000000000003a000000000000000000000000000000000000",
            "000000000000000000dada00000000000000000000000000000000000000003030303037353500303030303030300030",
            "303030303030003030303030303030303030003030303030303030303030003031323433300020350000000000000000",
            "00000000000000000000000000000000000000000000000002000000000000000000000000000000000000000000dada",
            "dadadadadada00",
        ]
        .concat();
        let data: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(Walker::new().final_block(&data)));
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the walk ends");
        assert_eq!(got, None);
    }

    #[test]
    fn refuses_garbage() {
        let mut w = Walker::new();
        assert_eq!(w.final_block(&[]), None);
        assert_eq!(w.final_block(&[0x07]), None); // reserved block type
        assert_eq!(w.final_block(&[0x00, 0x01, 0x00, 0x00, 0x00]), None); // LEN != !NLEN
    }
}
