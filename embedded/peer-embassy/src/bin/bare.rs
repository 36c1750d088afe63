//! The same hello-world with no executor at all: cortex-m-rt, semihosting output and the
//! panic handler. It is the floor both errand-embedded and the embassy hello-world stand on.
#![no_std]
#![no_main]

use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    hprintln!("hello from a bare main {}", 1);
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}
