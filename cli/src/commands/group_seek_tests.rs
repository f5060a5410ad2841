//! The seek plan's arithmetic: every `--to` form and `--shift-by` against a partition's
//! committed offset and log bounds.

use super::{new_offset, PartitionState, Planned, SeekMove};
use crate::seek_target::SeekTarget;

fn partition(committed: Option<i64>, start: i64, end: i64) -> PartitionState {
    PartitionState {
        topic: "orders".to_owned(),
        partition: 0,
        committed,
        log_start_offset: start,
        log_end_offset: end,
        time_offset: None,
    }
}

#[test]
fn start_and_end_are_the_log_bounds() {
    let state = partition(Some(50), 10, 100);
    assert_eq!(
        new_offset(&state, SeekMove::To(SeekTarget::Start)),
        Planned::Move(10)
    );
    assert_eq!(
        new_offset(&state, SeekMove::To(SeekTarget::End)),
        Planned::Move(100)
    );
}

#[test]
fn an_offset_outside_the_log_goes_to_the_nearest_end() {
    let state = partition(None, 10, 100);
    let to = |offset| new_offset(&state, SeekMove::To(SeekTarget::Offset(offset)));
    assert_eq!(to(42), Planned::Move(42));
    assert_eq!(to(100), Planned::Move(100));
    assert_eq!(
        to(5),
        Planned::Clamped {
            asked: 5,
            offset: 10
        }
    );
    assert_eq!(
        to(500),
        Planned::Clamped {
            asked: 500,
            offset: 100
        }
    );
}

#[test]
fn a_time_without_a_record_that_new_goes_to_the_end() {
    let mut state = partition(Some(1), 0, 80);
    let at = SeekMove::To(SeekTarget::Time(1_700_000_000_000));
    assert_eq!(new_offset(&state, at), Planned::Move(80));
    state.time_offset = Some(33);
    assert_eq!(new_offset(&state, at), Planned::Move(33));
}

#[test]
fn shift_by_moves_the_committed_offset_within_the_log() {
    let state = partition(Some(50), 10, 100);
    assert_eq!(new_offset(&state, SeekMove::ShiftBy(-5)), Planned::Move(45));
    assert_eq!(
        new_offset(&state, SeekMove::ShiftBy(60)),
        Planned::Clamped {
            asked: 110,
            offset: 100
        }
    );
    assert_eq!(
        new_offset(&state, SeekMove::ShiftBy(-45)),
        Planned::Clamped {
            asked: 5,
            offset: 10
        }
    );
    assert_eq!(
        new_offset(&state, SeekMove::ShiftBy(i64::MIN)),
        Planned::Clamped {
            asked: i64::MIN + 50,
            offset: 10
        }
    );
    assert_eq!(
        new_offset(&partition(None, 0, 9), SeekMove::ShiftBy(1)),
        Planned::Skipped
    );
}
