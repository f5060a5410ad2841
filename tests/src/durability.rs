//! The content scheme shared by `durable_appender` and the SIGKILL test: every record's
//! value is derived from who wrote it, so a batch found after a crash can be checked
//! byte for byte against what the appender reported.

/// How many records the batch with this sequence number holds (1 to 5).
pub fn record_count(sequence: u64) -> u32 {
    (sequence % 5) as u32 + 1
}

/// The value of record `index` of batch `sequence` of `thread` in process `incarnation`,
/// padded to about 200 bytes so batches are not trivially small.
pub fn value(incarnation: u32, thread: u32, sequence: u64, index: u32) -> Vec<u8> {
    let mut text = format!("i{incarnation}-t{thread}-s{sequence}-r{index}-");
    while text.len() < 200 {
        text.push_str("pad.");
    }
    text.into_bytes()
}
