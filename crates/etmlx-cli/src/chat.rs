//! `etmlx chat`: an interactive conversation that keeps its messages and KV cache across turns.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Result;
use etmlx_llm::ChatSession;
use etmlx_runtime::BackendOptions;

use crate::generate::{ModelArgs, SamplingArgs};

#[derive(clap::Args, Clone, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message of the conversation (change it later with /system).
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

const HELP: &str =
    "commands: /reset (new conversation), /system [TEXT] (set or clear the system message), \
/stats (last answer's stats), /quit";

pub fn run(args: &ChatArgs, ptd: Option<&Path>, backend: BackendOptions) -> Result<()> {
    let options = args.sampling.options()?;
    let generator = args.model.load(ptd, backend)?;
    if generator.chat_template().is_none() {
        anyhow::bail!(
            "{} has no chat template; use `etmlx generate --raw` instead",
            args.model.tokenizer.display()
        );
    }
    let max_ctx = generator.model().metadata().max_ctx_len;
    let mut session = ChatSession::new(generator, args.system.clone());
    eprintln!(
        "etmlx chat: {} (context {max_ctx} tokens). {HELP}",
        args.model.model.display()
    );

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut stdout = std::io::stdout();
    loop {
        write!(stdout, ">>> ")?;
        stdout.flush()?;
        let Some(line) = lines.next() else {
            writeln!(stdout)?;
            break;
        };
        let line = line?;
        let input = line.trim();
        if input.is_empty() {
            continue;
        }
        if let Some(command) = input.strip_prefix('/') {
            let (name, rest) = command
                .split_once(char::is_whitespace)
                .unwrap_or((command, ""));
            match name {
                "quit" | "exit" | "q" => break,
                "reset" => {
                    session.reset()?;
                    eprintln!("[conversation reset]");
                }
                "system" => {
                    let text = rest.trim();
                    session.set_system((!text.is_empty()).then(|| text.to_string()));
                    eprintln!(
                        "[system message {}]",
                        if text.is_empty() { "cleared" } else { "set" }
                    );
                }
                "stats" => match session.generator().last_stats() {
                    Some(stats) => eprintln!(
                        "{} | context: {}/{max_ctx} tokens",
                        stats.summary(),
                        session.generator().cached_tokens().len()
                    ),
                    None => eprintln!("[no answer yet]"),
                },
                "help" | "?" => eprintln!("{HELP}"),
                _ => eprintln!("unknown command /{name}; {HELP}"),
            }
            continue;
        }
        let result = session.send(input, &options, |ev| {
            if !ev.text.is_empty() {
                let _ = stdout.write_all(ev.text.as_bytes());
                let _ = stdout.flush();
            }
            ControlFlow::Continue(())
        });
        writeln!(stdout)?;
        match result {
            Ok(out) => {
                if out.stop_reason != etmlx_llm::StopReason::Eos {
                    eprintln!("[stopped: {}]", out.stop_reason);
                }
            }
            // A turn that does not fit (or fails) leaves the conversation as it was; the REPL goes on.
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}
