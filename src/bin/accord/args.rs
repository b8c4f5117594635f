//! A small command-line parser: `--name value` options and `--flag` switches, with errors that
//! name the offending argument.

use std::collections::BTreeMap;
use std::str::FromStr;

/// Parsed `--name value` options and bare words, in order.
pub struct Args {
    options: BTreeMap<String, String>,
    /// Arguments that are not options (subcommands), in order.
    pub words: Vec<String>,
}

impl Args {
    /// Parses `arguments`; `switches` are the options that take no value.
    pub fn parse(arguments: Vec<String>, switches: &[&str]) -> Result<Args, String> {
        let mut options = BTreeMap::new();
        let mut words = Vec::new();
        let mut iter = arguments.into_iter();
        while let Some(argument) = iter.next() {
            let Some(name) = argument.strip_prefix("--") else {
                words.push(argument);
                continue;
            };
            let (name, value) = match name.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None if switches.contains(&name) => (name.to_string(), "true".to_string()),
                None => {
                    let value = iter
                        .next()
                        .ok_or_else(|| format!("option --{name} needs a value"))?;
                    (name.to_string(), value)
                }
            };
            if options.insert(name.clone(), value).is_some() {
                return Err(format!("option --{name} given twice"));
            }
        }
        Ok(Args { options, words })
    }

    /// The value of `--name` parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.options.remove(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("option --{name}: cannot parse '{text}'")),
        }
    }

    /// The value of `--name` parsed as `T`, if given.
    pub fn get_opt<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.options.remove(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("option --{name}: cannot parse '{text}'")),
        }
    }

    /// Whether the switch `--name` was given.
    pub fn flag(&mut self, name: &str) -> bool {
        self.options.remove(name).is_some()
    }

    /// Like [`Args::finish`], for commands that take positional words.
    pub fn finish_keeping_words(&mut self) -> Result<(), String> {
        match self.options.keys().next() {
            Some(name) => Err(format!("unknown option --{name}")),
            None => Ok(()),
        }
    }

    /// Fails on any option nobody asked for (a typo must not be silently ignored).
    pub fn finish(self) -> Result<(), String> {
        match self.options.keys().next() {
            Some(name) => Err(format!("unknown option --{name}")),
            None => Ok(()),
        }
    }
}
