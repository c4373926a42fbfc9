//! How a request picks the version of each component it reaches while a canary runs: one
//! random draw per request, shared by every store the request makes through links, so that a
//! request that reaches a component twice (cart → products, and products itself) meets the same
//! version of it each time, and a canary of P% gets P% of the requests that reach it.
//!
//! The draw is a thread-local counter mixed by SplitMix64: no lock, no shared cache line, on
//! a path every request takes.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

/// A canary's share of its component's requests: a whole percentage, 1 to 99 (0 is no canary,
/// 100 is a promotion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share(u8);

impl Share {
    /// The share `percent`, or why it is none.
    pub fn parse(percent: &str) -> Result<Self, String> {
        match percent.trim().parse::<u8>() {
            Ok(p @ 1..=99) => Ok(Self(p)),
            _ => Err(format!(
                "the canary's share must be a whole percentage from 1 to 99, not `{percent}`"
            )),
        }
    }

    /// The percentage.
    pub fn percent(self) -> u8 {
        self.0
    }
}

/// One request's draw: which side of every canary's share it falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw(u64);

impl Draw {
    /// A fresh draw for a new request.
    pub fn new() -> Self {
        thread_local! {
            static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8));
        }
        STATE.with(|state| {
            let next = state.get().wrapping_add(GOLDEN_GAMMA);
            state.set(next);
            Self(mix(next))
        })
    }

    /// Whether this request takes the canary of component `id`, whose share is `share`. Mixed
    /// with the id, so that two canaries at once get independent requests.
    pub fn takes_canary(self, id: &str, share: Share) -> bool {
        let key = id.bytes().fold(FNV_OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
        });
        mix(self.0 ^ key) % 100 < u64::from(share.0)
    }
}

impl Default for Draw {
    fn default() -> Self {
        Self::new()
    }
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// SplitMix64's finaliser: consecutive inputs give unrelated outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The versions of one component that serve: a stable one, and maybe a canary with its share.
#[derive(Debug, Clone)]
pub struct Split<V> {
    /// The version every request gets that does not take the canary.
    pub stable: V,
    /// The new version on trial, and its share of the requests.
    pub canary: Option<(V, Share)>,
}

impl<V> Split<V> {
    /// Only `stable` serves.
    pub fn only(stable: V) -> Self {
        Self {
            stable,
            canary: None,
        }
    }

    /// The version a request with `draw` gets of component `id`.
    pub fn pick(&self, draw: Draw, id: &str) -> &V {
        match &self.canary {
            Some((canary, share)) if draw.takes_canary(id, *share) => canary,
            _ => &self.stable,
        }
    }

    /// The version a canary's requests get: the canary if there is one, else the stable one.
    pub fn newest(&self) -> &V {
        self.canary
            .as_ref()
            .map_or(&self.stable, |(canary, _)| canary)
    }

    /// The same split with each version mapped by `f`, or its first error.
    pub fn try_map<W, E>(&self, mut f: impl FnMut(&V) -> Result<W, E>) -> Result<Split<W>, E> {
        let stable = f(&self.stable)?;
        let canary = match &self.canary {
            Some((canary, share)) => Some((f(canary)?, *share)),
            None => None,
        };
        Ok(Split { stable, canary })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_a_percentage_from_1_to_99() {
        assert_eq!(Share::parse("20").unwrap().percent(), 20);
        for bad in ["0", "100", "-1", "12.5", "", "all"] {
            assert!(Share::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_canary_gets_about_its_share_of_draws() {
        let split = Split {
            stable: 'a',
            canary: Some(('b', Share::parse("20").unwrap())),
        };
        let canaries = (0..10_000)
            .filter(|_| *split.pick(Draw::new(), "products") == 'b')
            .count();
        assert!((1_800..2_200).contains(&canaries), "{canaries} of 10,000");
    }

    #[test]
    fn one_draw_picks_the_same_version_each_time() {
        let split = Split {
            stable: 'a',
            canary: Some(('b', Share::parse("50").unwrap())),
        };
        for _ in 0..100 {
            let draw = Draw::new();
            assert_eq!(split.pick(draw, "products"), split.pick(draw, "products"));
        }
    }

    #[test]
    fn without_a_canary_every_draw_gets_the_stable_version() {
        let split = Split::only('a');
        assert!((0..1_000).all(|_| *split.pick(Draw::new(), "products") == 'a'));
    }
}
