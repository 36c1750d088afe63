//! Checks that print what they verified, and the stack's high-water mark.

use core::fmt;

use cortex_m_semihosting::hprintln;

/// A tally of checks; each one prints a line as it is made.
#[derive(Debug, Default)]
pub struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    /// Records one check: `ok` is the verdict, `what` says what was checked.
    pub fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) -> bool {
        if ok {
            self.passed += 1;
            hprintln!("  ok    {}", what);
        } else {
            self.failed += 1;
            hprintln!("  FAIL  {}", what);
        }
        ok
    }

    /// Checks passed so far.
    pub fn passed(&self) -> u32 {
        self.passed
    }

    /// Checks failed so far.
    pub fn failed(&self) -> u32 {
        self.failed
    }
}

/// `check!(checks, condition, "format", args…)`: one check with a formatted description.
macro_rules! check {
    ($checks:expr, $ok:expr, $($what:tt)+) => {
        $checks.check($ok, format_args!($($what)+))
    };
}
pub(crate) use check;

// Bounds of the stack region, from cortex-m-rt's linker script: it grows down from
// `_stack_start` (the top of RAM) towards `_stack_end` (the end of `.bss`/`.uninit`).
unsafe extern "C" {
    static _stack_start: u32;
    static mut _stack_end: u32;
}

/// The most stack used since reset, in bytes: the part of the region no longer painted.
///
/// cortex-m-rt (feature `paint-stack`) fills the whole region with
/// [`cortex_m_rt::STACK_PAINT_VALUE`] before `main`; the lowest word that lost its paint
/// marks the deepest the stack has been (interrupt frames included).
pub fn stack_high_water() -> usize {
    let bottom = (&raw const _stack_end).cast::<u32>();
    let top = (&raw const _stack_start).cast::<u32>();
    let mut word = bottom;
    while word < top {
        // SAFETY: `word` is word-aligned and inside the stack region, which is RAM that
        // the reset handler painted; reading it races with nothing (single core, and the
        // words below the stack pointer are not in use).
        if unsafe { word.read_volatile() } != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        // SAFETY: `word < top`, so one past it is still within or at the end of the region.
        word = unsafe { word.add(1) };
    }
    top as usize - word as usize
}

/// Paints the unused part of the stack again (all of it below the current frame, less a
/// margin), so that a later [`stack_high_water`] measures only what runs after this call.
pub fn repaint_stack() {
    /// Room left below the stack pointer for this function's own frame.
    const MARGIN: usize = 256;
    let bottom = (&raw mut _stack_end).cast::<u32>();
    let limit = cortex_m::register::msp::read() as usize - MARGIN;
    let mut word = bottom;
    while (word as usize) < limit {
        // SAFETY: `word` is word-aligned, in the stack region and at least `MARGIN` bytes
        // below the stack pointer: memory no frame uses now. An interrupt taken meanwhile
        // pushes its frame just below the stack pointer, above `limit`.
        unsafe {
            word.write_volatile(cortex_m_rt::STACK_PAINT_VALUE);
            word = word.add(1);
        }
    }
}
