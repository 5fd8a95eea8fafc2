//! The manifest's grammar: reading a manifest's text into
//! [`Capabilities`], and writing it back.

use std::fmt;

use thiserror::Error;

use super::{ANY_TASKS, Capabilities, Pattern, Right, tidy};

impl Capabilities {
    /// Reads a manifest (see the type's documentation).
    pub fn parse(manifest: &str) -> Result<Self, ManifestError> {
        let mut capabilities = Self::none();
        for (index, line) in manifest.lines().enumerate() {
            let fail = |message: String| ManifestError {
                line: index + 1,
                message,
            };
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else {
                continue;
            };
            let values: Vec<&str> = words.collect();
            match name {
                "all" if values.is_empty() => capabilities = Self::all(),
                "frame" if values.is_empty() => capabilities.frame = true,
                "all" | "frame" => return Err(fail(format!("`{name}` takes no values"))),
                "tasks" => {
                    // Lines add up: the largest count of several stands.
                    let count = match values.as_slice() {
                        ["*"] => ANY_TASKS,
                        [count] => count.parse().map_err(|_| {
                            fail(format!("`tasks` takes a number or `*`, not `{count}`"))
                        })?,
                        _ => return Err(fail("`tasks` takes one number or `*`".to_owned())),
                    };
                    capabilities.tasks = capabilities.tasks.max(count);
                }
                _ => {
                    let right = Right::ALL
                        .into_iter()
                        .find(|right| right.name() == name)
                        .ok_or_else(|| {
                            fail(format!(
                                "unknown capability `{name}`; known: all, frame, tasks, {}",
                                Right::ALL.map(Right::name).join(", ")
                            ))
                        })?;
                    if values.is_empty() {
                        return Err(fail(format!("`{name}` names nothing it reaches")));
                    }
                    for value in values {
                        let pattern = parse_value(right, value).map_err(fail)?;
                        capabilities.reach.entry(right).or_default().push(pattern);
                    }
                }
            }
        }
        for patterns in capabilities.reach.values_mut() {
            tidy(patterns);
        }
        Ok(capabilities)
    }
}

impl Pattern {
    /// One pattern as a manifest writes it.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let (text, prefix) = match text.strip_suffix('*') {
            Some(head) => (head, true),
            None => (text, false),
        };
        if text.contains('*') {
            return Err(format!("`{text}*`: `*` may only end a pattern"));
        }
        Ok(Self {
            text: text.into(),
            prefix,
        })
    }
}

/// A `kv.*` value that names a bucket alone means the whole bucket.
fn parse_value(right: Right, value: &str) -> Result<Pattern, String> {
    let pattern = Pattern::parse(value)?;
    if right.is_kv() && !pattern.text.contains('/') && !pattern.prefix {
        return Pattern::parse(&format!("{value}/*"));
    }
    if matches!(right, Right::Entities | Right::Despawn) {
        let known = matches!(&*pattern.text, "own" | "spawned") && !pattern.prefix
            || pattern == Pattern::everything()
            || right == Right::Despawn && pattern.text.starts_with("marked:");
        if !known {
            let marked = if right == Right::Despawn {
                ", `marked:<type path>`"
            } else {
                ""
            };
            return Err(format!(
                "`{right}` takes `own`, `spawned`{marked} or `*`, not `{value}`"
            ));
        }
    }
    Ok(pattern)
}

/// A manifest that could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
#[non_exhaustive]
pub struct ManifestError {
    /// Its line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// A task count as a manifest writes it: `*` for no cap beyond the host's.
pub(super) struct TasksShown(pub(super) u32);

impl fmt::Display for TasksShown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ANY_TASKS => f.write_str("*"),
            count => write!(f, "{count}"),
        }
    }
}

impl fmt::Display for Capabilities {
    /// As a manifest that [`Capabilities::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return writeln!(f, "all");
        }
        for (right, patterns) in &self.reach {
            write!(f, "{right}")?;
            for pattern in patterns {
                write!(f, " {pattern}")?;
            }
            writeln!(f)?;
        }
        if self.tasks > 0 {
            writeln!(f, "tasks {}", TasksShown(self.tasks))?;
        }
        if self.frame {
            writeln!(f, "frame")?;
        }
        Ok(())
    }
}
