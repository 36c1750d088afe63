//! Two fields of a slot's cold data packed into one word each on a 64-bit target (every
//! slot of the table pays for them, used or not): a static label ([`StaticLabel`]), and
//! a running task's desk or an ended task's end time ([`Tenure`]). On other targets the
//! same types hold plain fields, which are a word each there already or nearly so.
//!
//! Both keep pointers as pointers (strict provenance: an address only ever gains or loses
//! bits through `map_addr`, and an integer is never turned back into a pointer it must
//! dereference), so miri checks them as it checks the rest.

use std::sync::Arc;

use super::clock::Stamp;
use super::record::Desk;

/// A `&'static str` label. On a 64-bit target: one word, its address in the low 48 bits
/// and its length in the high 16; [`new`](Self::new) refuses a label that does not fit
/// (the caller keeps that one with the texts, as it keeps a label built at run time).
#[derive(Clone, Copy)]
pub(crate) struct StaticLabel(Repr);

#[cfg(target_pointer_width = "64")]
type Repr = core::ptr::NonNull<u8>;
#[cfg(not(target_pointer_width = "64"))]
type Repr = &'static str;

// SAFETY: it only ever gives out the `&'static str` it was made from, which is `Send` and
// `Sync` (immutable, and lives for the whole program).
unsafe impl Send for StaticLabel {}
// SAFETY: as above.
unsafe impl Sync for StaticLabel {}

/// The bits of a packed label's address.
#[cfg(target_pointer_width = "64")]
const ADDRESS: usize = (1 << 48) - 1;
/// Where a packed label's length starts.
#[cfg(target_pointer_width = "64")]
const LENGTH_SHIFT: u32 = 48;

impl StaticLabel {
    /// `text` in one word, or `None` if its address or length does not fit.
    #[cfg(target_pointer_width = "64")]
    pub(crate) fn new(text: &'static str) -> Option<Self> {
        let start = core::ptr::NonNull::from(text).cast::<u8>();
        if start.addr().get() & !ADDRESS != 0 || text.len() >> (usize::BITS - LENGTH_SHIFT) != 0 {
            return None;
        }
        Some(Self(
            start.map_addr(|addr| addr | (text.len() << LENGTH_SHIFT)),
        ))
    }

    /// `text` as it is.
    #[cfg(not(target_pointer_width = "64"))]
    pub(crate) fn new(text: &'static str) -> Option<Self> {
        Some(Self(text))
    }

    /// The label.
    #[cfg(target_pointer_width = "64")]
    pub(crate) fn get(self) -> &'static str {
        let len = self.0.addr().get() >> LENGTH_SHIFT;
        let start = self.0.as_ptr().map_addr(|addr| addr & ADDRESS);
        // SAFETY: `new` packed the start and length of a `&'static str` without changing
        // the pointer's provenance; unpacking gives them back exactly (the address fit in
        // its 48 bits, the length in its 16), so this is that string.
        unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(start, len)) }
    }

    /// The label.
    #[cfg(not(target_pointer_width = "64"))]
    pub(crate) fn get(self) -> &'static str {
        self.0
    }
}

/// While an attempt runs, its worker's desk (engine rule 8); after the task ends, its end
/// time; neither otherwise. The two never coexist: every path that ends a running task
/// takes the desk first (`Cold::leave`, or a cancel's or timeout's `take_desk`).
///
/// On a 64-bit target, one word: null for neither, the desk's `Arc` pointer, or the end
/// stamp shifted left by one with the low bit set (a desk's address is even). An end
/// stamp past 2^63 ns after the manager's epoch (292 years) is kept as the latest one
/// that fits.
pub(crate) struct Tenure(TenureRepr);

#[cfg(target_pointer_width = "64")]
type TenureRepr = *const Desk;
#[cfg(not(target_pointer_width = "64"))]
#[derive(Default)]
struct TenureRepr {
    desk: Option<Arc<Desk>>,
    end: Option<Stamp>,
}

// SAFETY: it owns either an `Arc<Desk>` (`Send + Sync`: the desk is shared by design) or
// a plain number.
unsafe impl Send for Tenure {}
// SAFETY: as above; `&Tenure` gives out only copies of the stamp.
unsafe impl Sync for Tenure {}

#[cfg(target_pointer_width = "64")]
impl Tenure {
    /// Neither a desk nor an end.
    pub(crate) const fn new() -> Self {
        Self(core::ptr::null())
    }

    /// Whether the word holds a desk (non-null, even).
    fn holds_desk(&self) -> bool {
        !self.0.is_null() && self.0.addr() & 1 == 0
    }

    /// The worker's desk for the attempt starting now. A desk already here is dropped.
    pub(crate) fn set_desk(&mut self, desk: Arc<Desk>) {
        debug_assert!(self.end().is_none(), "a task that ended starts no attempt");
        drop(self.take_desk());
        self.0 = Arc::into_raw(desk);
    }

    /// Takes the desk (the attempt's worker leaves the task, or whoever ended it took it).
    pub(crate) fn take_desk(&mut self) -> Option<Arc<Desk>> {
        if !self.holds_desk() {
            return None;
        }
        let raw = core::mem::replace(&mut self.0, core::ptr::null());
        // SAFETY: an even non-null word came from `Arc::into_raw` in `set_desk`; the word
        // is cleared here, so that count is taken back once.
        Some(unsafe { Arc::from_raw(raw) })
    }

    /// When the task ended.
    pub(crate) fn end(&self) -> Option<Stamp> {
        let word = self.0.addr();
        (word & 1 == 1).then(|| Stamp::from_nanos((word >> 1) as u64))
    }

    /// Records the task's end. The desk must be gone by then (rule 8).
    pub(crate) fn set_end(&mut self, end: Stamp) {
        debug_assert!(!self.holds_desk(), "the desk leaves before the task ends");
        drop(self.take_desk());
        let nanos = usize::try_from(end.nanos())
            .unwrap_or(usize::MAX)
            .min(usize::MAX >> 1);
        self.0 = core::ptr::without_provenance((nanos << 1) | 1);
    }
}

#[cfg(target_pointer_width = "64")]
impl Drop for Tenure {
    fn drop(&mut self) {
        drop(self.take_desk());
    }
}

#[cfg(not(target_pointer_width = "64"))]
impl Tenure {
    /// Neither a desk nor an end.
    pub(crate) const fn new() -> Self {
        Self(TenureRepr {
            desk: None,
            end: None,
        })
    }

    /// The worker's desk for the attempt starting now.
    pub(crate) fn set_desk(&mut self, desk: Arc<Desk>) {
        debug_assert!(self.0.end.is_none(), "a task that ended starts no attempt");
        self.0.desk = Some(desk);
    }

    /// Takes the desk.
    pub(crate) fn take_desk(&mut self) -> Option<Arc<Desk>> {
        self.0.desk.take()
    }

    /// When the task ended.
    pub(crate) fn end(&self) -> Option<Stamp> {
        self.0.end
    }

    /// Records the task's end. The desk must be gone by then (rule 8).
    pub(crate) fn set_end(&mut self, end: Stamp) {
        debug_assert!(
            self.0.desk.is_none(),
            "the desk leaves before the task ends"
        );
        self.0 = TenureRepr {
            desk: None,
            end: Some(end),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{Desk, Stamp, StaticLabel, Tenure};
    use std::sync::Arc;

    #[test]
    fn a_label_comes_back_whole() {
        for text in ["", "a", "send-invoice", "é✓ unicode"] {
            assert_eq!(StaticLabel::new(text).unwrap().get(), text);
        }
        static LONG: [u8; 70_000] = [b'y'; 70_000];
        let long: &'static str = core::str::from_utf8(&LONG).unwrap();
        #[cfg(target_pointer_width = "64")]
        assert!(
            StaticLabel::new(long).is_none(),
            "65 536 bytes and more do not fit"
        );
        #[cfg(not(target_pointer_width = "64"))]
        assert_eq!(StaticLabel::new(long).unwrap().get(), long);
    }

    #[test]
    fn a_tenure_holds_a_desk_then_an_end() {
        let desk = Arc::new(Desk::new());
        let mut tenure = Tenure::new();
        assert!(tenure.end().is_none());
        tenure.set_desk(Arc::clone(&desk));
        assert_eq!(Arc::strong_count(&desk), 2);
        assert!(tenure.end().is_none());
        let taken = tenure.take_desk().unwrap();
        assert!(Arc::ptr_eq(&taken, &desk));
        drop(taken);
        assert!(tenure.take_desk().is_none());
        for nanos in [0, 1, 12_345_678_901, u64::MAX >> 1] {
            tenure.set_end(Stamp::from_nanos(nanos));
            assert_eq!(tenure.end(), Some(Stamp::from_nanos(nanos)));
            assert!(tenure.take_desk().is_none());
        }
        // Past 2^63 ns: the latest end that fits.
        tenure.set_end(Stamp::from_nanos(u64::MAX));
        assert_eq!(tenure.end(), Some(Stamp::from_nanos(u64::MAX >> 1)));
        // A desk still held when the tenure drops is given back.
        let mut held = Tenure::new();
        held.set_desk(Arc::clone(&desk));
        drop(held);
        assert_eq!(Arc::strong_count(&desk), 1);
    }
}
