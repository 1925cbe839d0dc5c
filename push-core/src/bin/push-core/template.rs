//! `push-core config-template`: a config file with every setting, each
//! commented out with its default and what it does, for `/etc` (the Debian
//! package ships its output as `/etc/push-core/push-core.toml`).
//!
//! Nothing in it is written by hand, so it cannot drift from the code: the
//! keys come from [`Config::keys`], the defaults from `Config::default()`
//! written by the same serializer as `check-config`, and each explanation
//! from the help text of the setting's flag (the flags' doc comments in the
//! `settings` module, which a unit test keeps one per key). Settings given
//! as flags are written set, uncommented: that is how the package sets the
//! few it needs (the socket path, the state directory, ...).

use clap::{Arg, Command};
use push_core::config::{Config, flag_for};

use crate::settings::ServeArgs;

/// Explanations are wrapped to fit an 80-column terminal with the `# `.
const WRAP_AT: usize = 76;

/// The template, with the settings in `args` set.
pub fn render(args: &ServeArgs, serve_command: &Command) -> String {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let set = args.given_as_toml();
    let mut out = String::from(HEADER);
    for key in Config::keys() {
        let arg = serve_command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag_for(key).as_str()));
        out.push('\n');
        if let Some(arg) = arg {
            for line in wrap(&explanation(arg)) {
                out.push_str(&format!("# {line}\n"));
            }
        }
        let default = match defaults.get(*key) {
            Some(value) => format!("#{key} = {value}\n"),
            None => {
                let example = arg
                    .and_then(|arg| arg.get_value_names())
                    .and_then(|names| names.first())
                    .map_or_else(|| "VALUE".to_owned(), ToString::to_string);
                format!("# Unset by default.\n#{key} = \"{example}\"\n")
            }
        };
        out.push_str(&default);
        if let Some(value) = set.get(*key) {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    out
}

const HEADER: &str = "\
# push-core settings, written by `push-core config-template`.
#
# Every setting is listed, commented out, with its default. A flag of
# `push-core serve` or a PUSH_CORE_<KEY> variable (for example in the
# service's EnvironmentFile) takes precedence over this file. Check a change
# with `push-core check-config --config FILE` before restarting or reloading.
# docs/configuration.md explains each setting at length.
";

/// The flag's help without clap's `[default: ...]`: the template shows the
/// default as a value instead.
fn explanation(arg: &Arg) -> String {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    let help = match help.find("[default:") {
        Some(at) => &help[..at],
        None => help.as_str(),
    };
    let help = help.trim();
    if help.ends_with('.') {
        help.to_owned()
    } else {
        format!("{help}.")
    }
}

/// Splits `text` into lines of at most [`WRAP_AT`] characters, at spaces.
fn wrap(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > WRAP_AT {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use clap::{Args, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn template(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map_err(|error| error.to_string())
            .unwrap();
        render(&cli.serve, &ServeArgs::augment_args(Command::new("serve")))
    }

    /// The commented lines, uncommented: what an admin gets by removing
    /// every `#` in front of a setting.
    fn uncommented(template: &str) -> String {
        template
            .lines()
            .filter_map(|line| line.strip_prefix('#'))
            .filter(|line| line.contains(" = ") && !line.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_key_appears_with_its_explanation() {
        let template = template(&[]);
        for key in Config::keys() {
            let line = format!("\n#{key} = ");
            let at = template
                .find(&line)
                .unwrap_or_else(|| panic!("{key} is missing:\n{template}"));
            let before = &template[..at];
            let explained = before
                .rsplit("\n\n")
                .next()
                .is_some_and(|block| block.starts_with("# ") && block.len() > 10);
            assert!(explained, "{key} has no explanation:\n{template}");
        }
    }

    #[test]
    fn the_defaults_read_back_as_the_defaults() {
        let table: toml::Table = toml::from_str(&uncommented(&template(&[])))
            .map(|table: toml::Table| {
                // Unset settings are shown with a placeholder, not a value.
                table
                    .into_iter()
                    .filter(|(_, value)| {
                        !value
                            .as_str()
                            .is_some_and(|s| s.chars().all(|c| c.is_ascii_uppercase()))
                    })
                    .collect()
            })
            .unwrap();
        let config = Config::builder()
            .merge(figment::providers::Serialized::globals(table))
            .build()
            .unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn the_file_as_shipped_is_the_defaults_and_reads_back() {
        let shipped = template(&[]);
        let table: toml::Table = toml::from_str(&shipped).unwrap();
        assert!(table.is_empty(), "nothing is set: {table:?}");
    }

    #[test]
    fn settings_given_as_flags_are_set() {
        let template = template(&["--state-dir", "/var/lib/push-core", "--socket-mode", "0640"]);
        let table: toml::Table = toml::from_str(&template).unwrap();
        assert_eq!(table.len(), 2, "{table:?}");
        assert_eq!(table["state_dir"].as_str(), Some("/var/lib/push-core"));
        assert_eq!(table["socket_mode"].as_str(), Some("0640"));
        assert!(template.contains("#socket_mode = \"0660\"\nsocket_mode = \"0640\"\n"));
    }
}
