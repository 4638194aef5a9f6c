//! A tiny seeded pseudo-random generator (SplitMix64): the same seed gives
//! the same images on every machine, with no dependency.

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, a full period,
/// good enough to pick variants.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator for item `n` of a run with `seed`: each image draws
    /// from its own stream, so image `n` is the same whatever the others
    /// drew (and whatever the number of images).
    pub fn for_item(seed: u64, stream: u64, n: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mixed = r.next_u64() ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        // The modulo bias is irrelevant at these sizes.
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One item, uniformly.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One item, with the weights given.
    pub fn weighted<'a, T>(&mut self, items: &'a [(u32, T)]) -> &'a T {
        let total: u32 = items.iter().map(|(w, _)| w).sum();
        let mut x = self.below(total as usize) as u32;
        for (w, item) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        unreachable!("weights sum to {total}")
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// `n` random lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_items_are_independent() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::for_item(1, 2, 3);
        let mut y = Rng::for_item(1, 2, 3);
        assert_eq!(x.next_u64(), y.next_u64());
        assert_ne!(
            Rng::for_item(1, 2, 3).next_u64(),
            Rng::for_item(1, 2, 4).next_u64()
        );
        assert_ne!(
            Rng::for_item(1, 2, 3).next_u64(),
            Rng::for_item(2, 2, 3).next_u64()
        );
    }

    #[test]
    fn weighted_and_below_stay_in_range() {
        let mut r = Rng::new(1);
        let items = [(1, 'a'), (0, 'b'), (3, 'c')];
        for _ in 0..1000 {
            assert!(r.below(3) < 3);
            assert_ne!(*r.weighted(&items), 'b');
            let v = r.range(2, 4);
            assert!((2..=4).contains(&v));
        }
    }
}
