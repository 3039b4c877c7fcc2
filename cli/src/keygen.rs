//! `warden keygen`: a new ed25519 key pair for signing releases or approvals.

use crate::admin::Format;
use crate::exit::{self, Failure};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use warden_host::PrivateKey;

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the private key (mode 0600; an existing file is never overwritten).
    #[arg(long, short)]
    out: PathBuf,
}

pub fn keygen(args: KeygenArgs, output: Format) -> Result<u8, Failure> {
    let key = PrivateKey::generate();
    key.write_new(&args.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::invalid(format!(
                "{} already exists; not overwriting a key",
                args.out.display()
            ))
        } else {
            Failure::new(
                exit::HOST_FAILURE,
                format!("writing {}: {e}", args.out.display()),
            )
        }
    })?;
    let public = key.public_key();
    if output.json {
        outln!(
            "{}",
            json!({"public_key": public.to_string(), "key_id": public.key_id(), "private_key_file": args.out})
        );
    } else {
        outln!("{public}");
        eprintln!(
            "private key written to {} (keep it secret); key id {}",
            args.out.display(),
            public.key_id()
        );
    }
    Ok(exit::OK)
}
