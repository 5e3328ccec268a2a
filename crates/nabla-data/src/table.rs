//! CSV tables: a header row, numeric features, and a target column named by
//! the user that holds classes or values.
//!
//! Conventions:
//! - The first row names the columns; cells are trimmed; a row with another
//!   number of cells than the header is refused with its line.
//! - Every column but the target is a feature and must be a number in every
//!   row (an empty cell or text is refused with its line and column).
//! - The task, when not stated, is classification if the target holds text,
//!   or only integers with at most [`MAX_INFERRED_CLASSES`] distinct values;
//!   regression otherwise.
//! - Class names are sorted: numerically when they are all numbers, else as
//!   text (as scikit-learn's `LabelEncoder` orders them), so the order does
//!   not depend on the order of the rows.

use crate::{DataError, Result, TensorDataset};
use nabla_tensor::Tensor;
use std::path::{Path, PathBuf};

/// A target of integers with at most this many distinct values is taken for
/// classes when the task is not stated.
pub const MAX_INFERRED_CLASSES: usize = 20;

/// The largest CSV file read (1 GiB): refused before reading, not after.
pub const MAX_CSV_BYTES: u64 = 1 << 30;

/// Classification or regression, as a user states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskChoice {
    /// The target holds classes.
    Classify,
    /// The target holds real values.
    Regress,
}

/// The cells of a CSV file, as text, with the line of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    path: PathBuf,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    lines: Vec<u64>,
}

/// A table turned into a data set: which columns are features, which is the
/// target, and the samples.
#[derive(Debug, Clone, PartialEq)]
pub struct TableData {
    /// Feature columns, in order: the model's inputs.
    pub features: Vec<String>,
    /// The target column.
    pub target: String,
    /// Whether the task was inferred (not stated).
    pub inferred: bool,
    /// The samples: inputs `[N, features]`, targets class indices or values.
    pub data: TensorDataset,
}

impl Table {
    /// Reads a CSV file with a header row.
    ///
    /// # Errors
    /// [`DataError::Io`] for an unreadable file; [`DataError::Table`] for an
    /// empty file, a header without columns, a repeated column name, or a
    /// ragged row (naming its line).
    pub fn read(path: &Path) -> Result<Table> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_CSV_BYTES {
            return Err(table_error(
                path,
                1,
                None,
                format!("the file has {size} bytes, more than the {MAX_CSV_BYTES}-byte limit"),
            ));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(path, &bytes)
    }

    /// [`Table::read`] from bytes in memory; `path` names them in errors.
    ///
    /// # Errors
    /// As [`Table::read`].
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Table> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let bad_csv = |e: csv::Error| {
            let line = e.position().map_or(1, |p| p.line());
            table_error(path, line, None, e.to_string())
        };
        let columns: Vec<String> = reader
            .headers()
            .map_err(bad_csv)?
            .iter()
            .map(str::to_string)
            .collect();
        if columns.iter().all(|c| c.is_empty()) {
            return Err(table_error(
                path,
                1,
                None,
                "the file is empty: expected a header row naming the columns".into(),
            ));
        }
        for (i, c) in columns.iter().enumerate() {
            if c.is_empty() {
                return Err(table_error(
                    path,
                    1,
                    None,
                    format!("column {} has no name in the header", i + 1),
                ));
            }
            if columns[..i].contains(c) {
                return Err(table_error(
                    path,
                    1,
                    Some(c),
                    "the column name appears twice in the header".into(),
                ));
            }
        }
        let (mut rows, mut lines) = (Vec::new(), Vec::new());
        for record in reader.records() {
            let record = record.map_err(bad_csv)?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() == 1 && record.get(0) == Some("") {
                continue; // a blank line
            }
            if record.len() != columns.len() {
                return Err(table_error(
                    path,
                    line,
                    None,
                    format!(
                        "the row has {} cells, the header names {} columns",
                        record.len(),
                        columns.len()
                    ),
                ));
            }
            rows.push(record.iter().map(str::to_string).collect());
            lines.push(line);
        }
        if rows.is_empty() {
            return Err(table_error(
                path,
                1,
                None,
                "the file has a header but no rows".into(),
            ));
        }
        Ok(Table {
            path: path.to_path_buf(),
            columns,
            rows,
            lines,
        })
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of rows (not counting the header).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows (never, for a table that was read).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The file the table came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The index of column `name`.
    ///
    /// # Errors
    /// [`DataError::Table`] listing the columns there are.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            table_error(
                &self.path,
                1,
                Some(name),
                format!(
                    "no such column; the header names {}",
                    self.columns.join(", ")
                ),
            )
        })
    }

    /// The cells of column `name`, parsed as numbers, `[rows, columns]`.
    ///
    /// # Errors
    /// A missing column, or a cell that is not a finite number.
    pub fn numbers(&self, names: &[String]) -> Result<Tensor<f32>> {
        let index: Vec<usize> = names
            .iter()
            .map(|n| self.column(n))
            .collect::<Result<_>>()?;
        let mut values = Vec::with_capacity(self.rows.len() * index.len());
        for (row, &line) in self.rows.iter().zip(&self.lines) {
            for &c in &index {
                values.push(self.number(&row[c], line, c)?);
            }
        }
        Tensor::from_vec(values, &[self.rows.len(), index.len()])
            .map_err(|e| DataError::invalid("table", e.to_string()))
    }

    fn number(&self, cell: &str, line: u64, column: usize) -> Result<f32> {
        let bad =
            |reason: String| table_error(&self.path, line, Some(&self.columns[column]), reason);
        if cell.is_empty() {
            return Err(bad(
                "the cell is empty (missing values are not filled in)".into()
            ));
        }
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => Ok(v as f32),
            Ok(_) => Err(bad(format!("'{cell}' is not a finite 32-bit number"))),
            Err(_) => Err(bad(format!("'{cell}' is not a number"))),
        }
    }

    /// The cells of column `name` as indices into `classes` (the classes a
    /// model was trained on, so that a file holding only some of them
    /// keeps the model's numbering).
    ///
    /// # Errors
    /// A missing column, or a cell that is not one of `classes`.
    pub fn class_indices(&self, name: &str, classes: &[String]) -> Result<Vec<usize>> {
        let c = self.column(name)?;
        self.rows
            .iter()
            .zip(&self.lines)
            .map(|(row, &line)| {
                classes.iter().position(|k| *k == row[c]).ok_or_else(|| {
                    table_error(
                        &self.path,
                        line,
                        Some(name),
                        format!(
                            "'{}' is not one of the model's classes ({})",
                            row[c],
                            classes.join(", ")
                        ),
                    )
                })
            })
            .collect()
    }

    /// The data set of features (every column but `target`, as numbers)
    /// and the target, as classes or values (`task`, or inferred).
    ///
    /// # Errors
    /// A missing target column, a table with no feature column, a
    /// non-numeric feature, a non-numeric value to regress, or a single class.
    pub fn to_data(&self, target: &str, task: Option<TaskChoice>) -> Result<TableData> {
        let t = self.column(target)?;
        let features: Vec<String> = self
            .columns
            .iter()
            .filter(|c| *c != target)
            .cloned()
            .collect();
        if features.is_empty() {
            return Err(table_error(
                &self.path,
                1,
                Some(target),
                "the target is the only column: there are no features to learn from".into(),
            ));
        }
        let inputs = self.numbers(&features)?;
        let cells: Vec<&str> = self.rows.iter().map(|r| r[t].as_str()).collect();
        let numeric: Vec<Option<f64>> = cells
            .iter()
            .map(|c| c.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect();
        let inferred = task.is_none();
        let task = task.unwrap_or_else(|| infer_task(&numeric));
        let data = match task {
            TaskChoice::Regress => {
                let values: Vec<f32> = self
                    .rows
                    .iter()
                    .zip(&self.lines)
                    .map(|(row, &line)| self.number(&row[t], line, t))
                    .collect::<Result<_>>()?;
                let n = values.len();
                TensorDataset::regression(
                    inputs,
                    Tensor::from_vec(values, &[n])
                        .map_err(|e| DataError::invalid("table", e.to_string()))?,
                )?
            }
            TaskChoice::Classify => {
                if let Some(i) = cells.iter().position(|c| c.is_empty()) {
                    return Err(table_error(
                        &self.path,
                        self.lines[i],
                        Some(target),
                        "the cell is empty: every row needs a class".into(),
                    ));
                }
                let classes = class_names(&cells, &numeric);
                if classes.len() < 2 {
                    return Err(table_error(
                        &self.path,
                        1,
                        Some(target),
                        format!(
                            "every row has the class '{}': classification needs at least two classes",
                            classes.first().map(String::as_str).unwrap_or("")
                        ),
                    ));
                }
                let labels: Vec<usize> = cells
                    .iter()
                    .map(|c| classes.iter().position(|k| k == c).unwrap_or(0))
                    .collect();
                TensorDataset::classification(inputs, &labels, classes)?
            }
        };
        Ok(TableData {
            features,
            target: target.to_string(),
            inferred,
            data,
        })
    }
}

/// Classification for text or few distinct integers, regression otherwise.
fn infer_task(numeric: &[Option<f64>]) -> TaskChoice {
    if numeric.iter().any(Option::is_none) {
        return TaskChoice::Classify;
    }
    let mut distinct: Vec<f64> = Vec::new();
    for v in numeric.iter().flatten() {
        if v.fract() != 0.0 {
            return TaskChoice::Regress;
        }
        if !distinct.contains(v) {
            distinct.push(*v);
            if distinct.len() > MAX_INFERRED_CLASSES {
                return TaskChoice::Regress;
            }
        }
    }
    TaskChoice::Classify
}

/// The distinct cells, sorted numerically when all are numbers, else as text.
fn class_names(cells: &[&str], numeric: &[Option<f64>]) -> Vec<String> {
    let mut names: Vec<&str> = Vec::new();
    for c in cells {
        if !names.contains(c) {
            names.push(c);
        }
    }
    if numeric.iter().all(Option::is_some) {
        names.sort_by(|a, b| {
            let (x, y) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        });
    } else {
        names.sort_unstable();
    }
    names.into_iter().map(str::to_string).collect()
}

fn table_error(path: &Path, line: u64, column: Option<&str>, reason: String) -> DataError {
    DataError::Table {
        path: path.to_path_buf(),
        line,
        column: column.map(str::to_string),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dataset, Task};

    fn table(text: &str) -> Result<Table> {
        Table::parse(Path::new("t.csv"), text.as_bytes())
    }

    #[test]
    fn classes_are_sorted_and_the_task_inferred() {
        let t = table("a,b,kind\n1,2,dog\n3,4,cat\n5,6,dog\n").unwrap();
        let d = t.to_data("kind", None).unwrap();
        assert!(d.inferred);
        assert_eq!(d.features, ["a", "b"]);
        assert_eq!(
            d.data.task(),
            &Task::Classify {
                classes: vec!["cat".into(), "dog".into()]
            }
        );
        assert_eq!(d.data.targets().data(), &[1.0, 0.0, 1.0]);
        // Integers with few values are classes, sorted as numbers.
        let t = table("x,y\n1,10\n2,9\n3,10\n4,2\n").unwrap();
        let d = t.to_data("y", None).unwrap();
        assert_eq!(
            d.data.task(),
            &Task::Classify {
                classes: vec!["2".into(), "9".into(), "10".into()]
            }
        );
        // Fractions are values to regress.
        let t = table("x,y\n1,0.5\n2,1.5\n").unwrap();
        assert_eq!(
            t.to_data("y", None).unwrap().data.task(),
            &Task::Regress { outputs: 1 }
        );
        assert_eq!(
            t.to_data("y", Some(TaskChoice::Classify))
                .unwrap()
                .data
                .task()
                .name(),
            "classify"
        );
    }

    #[test]
    fn bad_tables_name_the_line_and_column() {
        let msg = |text: &str, target: &str| {
            table(text)
                .and_then(|t| t.to_data(target, None))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg("", "y"),
            "t.csv: line 1: the file is empty: expected a header row naming the columns"
        );
        assert!(msg("x,y\n", "y").contains("header but no rows"));
        assert_eq!(
            msg("x,y\n1,2\n3\n", "y"),
            "t.csv: line 3: the row has 1 cells, the header names 2 columns"
        );
        assert_eq!(
            msg("x,y\n1,2\nabc,3\n", "y"),
            "t.csv: line 3, column 'x': 'abc' is not a number"
        );
        assert!(msg("x,y\n1,2\n,3\n", "y").contains("line 3, column 'x': the cell is empty"));
        assert!(
            msg("x,y\n1,2\n", "z").contains("column 'z': no such column; the header names x, y")
        );
        assert!(msg("x,y\n1,a\n2,a\n", "y").contains("classification needs at least two classes"));
        assert!(msg("y\n1\n2\n", "y").contains("no features"));
        assert!(msg("x,x\n1,2\n", "x").contains("appears twice"));
        let t = table("x,y\n1,a\n2,0.5\n").unwrap();
        assert!(t
            .to_data("y", Some(TaskChoice::Regress))
            .unwrap_err()
            .to_string()
            .contains("line 2, column 'y': 'a' is not a number"));
    }
}
