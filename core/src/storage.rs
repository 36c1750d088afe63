//! Where a fixed-capacity structure keeps its cells: inline or on the heap.
//!
//! Every bounded structure in this crate (queue levels, slot table, timer wheel) is
//! generic over a [`Storage`] of its cell type. Two kinds exist:
//!
//! - `[C; N]`: inline, sized at compile time, needs no heap (the `no_std` default);
//! - `Box<[C]>` (feature `alloc`): sized once at run time, never resized.
//!
//! Either way the capacity is fixed when the structure is built; nothing allocates after.

/// A fixed-length buffer of cells. Sealed: implemented for `[C; N]` and, with `alloc`,
/// `Box<[C]>`.
pub trait Storage<C>: sealed::Sealed<C> {
    /// The cells, in order.
    fn cells(&self) -> &[C];
    /// The cells, in order, for a structure that owns them exclusively.
    fn cells_mut(&mut self) -> &mut [C];
}

mod sealed {
    pub trait Sealed<C> {}
    impl<C, const N: usize> Sealed<C> for [C; N] {}
    #[cfg(feature = "alloc")]
    impl<C> Sealed<C> for alloc::boxed::Box<[C]> {}
}

impl<C, const N: usize> Storage<C> for [C; N] {
    #[inline]
    fn cells(&self) -> &[C] {
        self
    }
    #[inline]
    fn cells_mut(&mut self) -> &mut [C] {
        self
    }
}

#[cfg(feature = "alloc")]
impl<C> Storage<C> for alloc::boxed::Box<[C]> {
    #[inline]
    fn cells(&self) -> &[C] {
        self
    }
    #[inline]
    fn cells_mut(&mut self) -> &mut [C] {
        self
    }
}

/// Builds `[C; N]` by calling `f` for each index (inline storage constructor).
#[inline]
pub(crate) fn array_from_fn<C, const N: usize>(f: impl FnMut(usize) -> C) -> [C; N] {
    core::array::from_fn(f)
}

/// Builds a boxed slice of `len` cells by calling `f` for each index.
#[cfg(feature = "alloc")]
pub(crate) fn boxed_from_fn<C>(len: usize, f: impl FnMut(usize) -> C) -> alloc::boxed::Box<[C]> {
    (0..len).map(f).collect()
}

/// Builds a boxed slice of `len` cells by calling `f` for each index, or reports that the
/// memory could not be reserved (instead of aborting the process).
#[cfg(feature = "alloc")]
pub(crate) fn try_boxed_from_fn<C>(
    len: usize,
    f: impl FnMut(usize) -> C,
) -> Result<alloc::boxed::Box<[C]>, alloc::collections::TryReserveError> {
    let mut cells = alloc::vec::Vec::new();
    cells.try_reserve_exact(len)?;
    cells.extend((0..len).map(f));
    Ok(cells.into_boxed_slice())
}
