//! errand's core as a firmware uses it: static structures sized for [`TASKS`] tasks, a
//! SysTick interrupt that fires timers and makes tasks ready, and a main loop that runs
//! them by priority. No allocator. Runs on QEMU's `mps2-an386` (Cortex-M4F); prints over
//! semihosting and exits non-zero if any check fails.
#![no_std]
#![no_main]

mod firmware;
mod report;
mod scenario;

use core::mem::size_of;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

use crate::firmware::{Executor, Ready, Shared, TASKS, TICK_HZ, Table, Wheel};
use crate::report::Checks;

/// The processor clock of QEMU's MPS2 models (`SYSCLK`, 25 MHz). SysTick counts it when
/// its clock source is the processor clock.
const CORE_HZ: u32 = 25_000_000;

/// Seed of the retry jitter: the run is the same every time.
const SEED: u64 = 0x00e1_2a4d;

#[entry]
fn main() -> ! {
    let peripherals = cortex_m::Peripherals::take().expect("peripherals taken once");
    hprintln!(
        "errand on a Cortex-M4F (QEMU mps2-an386): {} tasks, no heap",
        TASKS
    );
    hprintln!(
        "static structures: slot table {} B, ready queue {} B, timer wheel {} B, in all {} B",
        size_of::<Table>(),
        size_of::<Ready>(),
        size_of::<Wheel>(),
        size_of::<Shared>() + size_of::<Wheel>()
    );

    let shared = firmware::install(scenario::BUDGET_BYTES);
    let executor = Executor::new(shared, SEED);
    let init_stack = report::stack_high_water();
    report::repaint_stack();

    let mut syst = peripherals.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / TICK_HZ - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    let mut checks = Checks::default();
    scenario::run(&executor, &mut checks);

    let (pushes, faults) = firmware::isr_counts();
    hprintln!(
        "\n{} ms of SysTick; {} tasks made ready from the interrupt ({} faults); checksum {:#010x}",
        firmware::ticks(),
        pushes,
        faults,
        firmware::checksum()
    );
    hprintln!(
        "stack high-water mark: {} bytes up to the end of start-up, {} bytes since",
        init_stack,
        report::stack_high_water()
    );
    hprintln!(
        "{} checks passed, {} failed",
        checks.passed(),
        checks.failed()
    );
    debug::exit(if checks.failed() == 0 && faults == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
fn SysTick() {
    firmware::on_tick();
}
