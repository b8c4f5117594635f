//! A small command-line parser: `--name value` options and `--flag` switches, with errors that
//! name the offending argument.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use accord::api::ClientConfig;
use accord::runtime::access::Secret;
use accord::runtime::tls::TlsFiles;

/// The help lines of the options [`Security::from_args`] reads for a client.
macro_rules! client_security_help {
    () => {
        "  --tls-ca FILE       connect with TLS, trusting this CA (default: $ACCORD_TLS_CA)
  --tls-cert FILE --tls-key FILE
                      the client's certificate and key, when members require one
                      (default: $ACCORD_TLS_CERT, $ACCORD_TLS_KEY)
  --token-file FILE   a file holding the token the members' access file knows this client
                      by (default: $ACCORD_TOKEN_FILE)
"
    };
}

/// The TLS files and token a member or a command-line client uses.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// TLS (`None`: plaintext).
    pub tls: Option<TlsFiles>,
    /// The token presented in `Hello` (empty: none).
    pub token: Secret,
}

impl Security {
    /// Reads `--tls-ca`, `--tls-cert`, `--tls-key`, `--token-file` and, for a member,
    /// `--plaintext` (a member must choose: TLS, or plaintext said out loud). A client reads
    /// the same settings from `ACCORD_TLS_CA`, `ACCORD_TLS_CERT`, `ACCORD_TLS_KEY` and
    /// `ACCORD_TOKEN_FILE` when the options are absent.
    pub fn from_args(args: &mut Args, member: bool) -> Result<Security, String> {
        let mut path = |name: &str, variable: &str| -> Result<Option<PathBuf>, String> {
            Ok(args.get_opt::<PathBuf>(name)?.or_else(|| {
                (!member)
                    .then(|| std::env::var_os(variable))
                    .flatten()
                    .map(PathBuf::from)
            }))
        };
        let ca = path("tls-ca", "ACCORD_TLS_CA")?;
        let cert = path("tls-cert", "ACCORD_TLS_CERT")?;
        let key = path("tls-key", "ACCORD_TLS_KEY")?;
        let token_file = path("token-file", "ACCORD_TOKEN_FILE")?;
        let plaintext = member && args.flag("plaintext");
        let tls = match (ca, cert, key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => {
                if member && (cert.is_none() || key.is_none()) {
                    return Err("a member with TLS needs --tls-ca, --tls-cert and --tls-key".into());
                }
                Some(TlsFiles { ca, cert, key })
            }
            (None, _, _) => return Err("--tls-cert and --tls-key need --tls-ca".into()),
        };
        if member {
            match (&tls, plaintext) {
                (Some(_), true) => return Err("give TLS files or --plaintext, not both".into()),
                (None, false) => {
                    return Err(
                        "choose how members and clients connect: --tls-ca, --tls-cert and \
                                --tls-key for TLS (see `accord certs`), or --plaintext for a \
                                trusted network"
                            .into(),
                    )
                }
                _ => {}
            }
        }
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("reading the token file {}: {e}", path.display()))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(format!("the token file {} is empty", path.display()));
                }
                Secret(token.as_bytes().to_vec())
            }
            None => Secret::default(),
        };
        Ok(Security { tls, token })
    }

    /// `config` with these settings.
    pub fn apply(&self, mut config: ClientConfig) -> ClientConfig {
        config.tls = self.tls.clone();
        config.token = self.token.clone();
        config
    }
}

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
