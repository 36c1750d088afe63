//! embassy-executor's hello-world, built like errand-embedded (same target, profile, panic
//! handler and semihosting output) so that their footprints compare: one task prints a
//! line and ends the program.
#![no_std]
#![no_main]

use cortex_m_semihosting::{debug, hprintln};
use embassy_executor::Spawner;
use panic_semihosting as _;

#[embassy_executor::task]
async fn hello(n: u32) {
    hprintln!("hello from embassy task {}", n);
    debug::exit(debug::EXIT_SUCCESS);
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    spawner.spawn(hello(1).expect("the task's pool has a free slot"));
}
