//! `TaskId` text form: exact round trip, and no panic or non-canonical acceptance on any input.

use errand_core::{ParseTaskIdErrorKind, TaskId};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn display_from_str_round_trips(index in any::<u32>(), generation in any::<u32>()) {
        let id = TaskId::new(index, generation);
        let text = id.to_string();
        prop_assert_eq!(&text, &format!("t-{index}-{generation}"));
        prop_assert_eq!(text.parse::<TaskId>(), Ok(id));
    }

    /// Whatever the string, parsing returns; and whatever it accepts prints back identically,
    /// so no non-canonical form (leading zeros, signs, spaces, other prefixes) is accepted.
    #[test]
    fn arbitrary_strings_never_panic_and_only_canonical_ones_parse(text in any::<String>()) {
        if let Ok(id) = text.parse::<TaskId>() {
            prop_assert_eq!(id.to_string(), text);
        }
    }

    /// Strings made of the id's own alphabet hit the interesting paths far more often.
    #[test]
    fn id_like_strings_parse_iff_canonical(text in "[t0-9x+ -]{0,24}") {
        match text.parse::<TaskId>() {
            Ok(id) => prop_assert_eq!(id.to_string(), text),
            Err(err) => {
                prop_assert!(err.offset() <= text.len());
                prop_assert!(err.to_string().starts_with("invalid task id: "));
            }
        }
    }

    #[test]
    fn non_canonical_variants_are_rejected(index in any::<u32>(), generation in any::<u32>()) {
        let variants = [
            (format!("t-0{index}-{generation}"), ParseTaskIdErrorKind::LeadingZero),
            (format!("t-{index}-0{generation}"), ParseTaskIdErrorKind::LeadingZero),
            (format!("t-+{index}-{generation}"), ParseTaskIdErrorKind::NonDigit),
            (format!("T-{index}-{generation}"), ParseTaskIdErrorKind::BadPrefix),
            (format!(" t-{index}-{generation}"), ParseTaskIdErrorKind::BadPrefix),
            (format!("t-{index}-{generation} "), ParseTaskIdErrorKind::TrailingText),
            (format!("t-{index}"), ParseTaskIdErrorKind::MissingPart),
            (format!("t-{index}-{generation}0000000000"), ParseTaskIdErrorKind::Overflow),
        ];
        for (text, kind) in variants {
            let err = text.parse::<TaskId>().expect_err(&text);
            prop_assert_eq!(err.kind(), kind, "{}", text);
        }
    }

    #[test]
    fn serde_round_trips_through_json(index in any::<u32>(), generation in any::<u32>()) {
        let id = TaskId::new(index, generation);
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
    }
}
