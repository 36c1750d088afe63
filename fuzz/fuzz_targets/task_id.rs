//! `task_id`: parsing arbitrary bytes never panics, and whatever parses prints back exactly.
#![no_main]

use errand_core::TaskId;
use libfuzzer_sys::fuzz_target;

fn check(text: &str) {
    match text.parse::<TaskId>() {
        Ok(id) => {
            // Only the canonical form parses, so it prints back byte for byte.
            assert_eq!(id.to_string(), text);
            let again: TaskId = id.to_string().parse().expect("a printed id parses");
            assert_eq!(again, id);
        }
        Err(err) => {
            assert!(err.offset() <= text.len());
            assert!(err.to_string().starts_with("invalid task id: "));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        check(text);
    }
    check(&String::from_utf8_lossy(data));
    // Ids built from the first eight bytes round-trip too.
    if let Some(bytes) = data.get(..8) {
        let index = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let generation = u32::from_le_bytes(bytes[4..].try_into().unwrap());
        let id = TaskId::new(index, generation);
        assert_eq!(id.to_string().parse::<TaskId>(), Ok(id));
    }
});
