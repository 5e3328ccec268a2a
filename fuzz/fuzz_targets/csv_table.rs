//! CSV tables: parse the rows, then turn them into features and a target
//! for each column in turn, as classes and as values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nabla_data::{Table, TaskChoice};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = Table::parse(Path::new("fuzz.csv"), data) else {
        return;
    };
    for column in table.columns().iter().take(4) {
        for task in [None, Some(TaskChoice::Classify), Some(TaskChoice::Regress)] {
            let _ = table.to_data(column, task);
        }
    }
});
