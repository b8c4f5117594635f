//! `accord certs`: a cluster CA and certificates for members and clients.

use std::path::PathBuf;
use std::process::ExitCode;

use accord::runtime::tls::{write_certificates, CA_FILE, CA_KEY_FILE};

use crate::args::Args;

const HELP: &str = "\
usage: accord certs --dir DIR [--hosts H[,H...]] NAME...

Makes a certificate and key for each NAME (DIR/NAME.pem, DIR/NAME-key.pem), signed by the
cluster CA in DIR (ca.pem, ca-key.pem), which is created first if it is not there. NAME is
the certificate's common name: the identity an access file (accord server --access) grants
rights to. Keys are written readable by their owner only. Certificates are valid for 825
days, as servers and as clients.

options:
  --dir DIR        where the CA and the certificates are (created if need be)
  --hosts H,...    the IP addresses and DNS names the certificates are valid for: every
                   address members are reached at (default 127.0.0.1,localhost)

example: accord certs --dir tls --hosts 10.0.0.1,10.0.0.2,10.0.0.3 node1 node2 node3 app
";

pub fn main(arguments: Vec<String>) -> Result<ExitCode, String> {
    let mut args = Args::parse(arguments, &["help"])?;
    if args.flag("help") || args.words.is_empty() {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let dir: PathBuf = args.get_opt("dir")?.ok_or("--dir is required")?;
    let hosts: String = args.get("hosts", "127.0.0.1,localhost".to_string())?;
    args.finish_keeping_words()?;
    let hosts: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect();
    let created_ca = !dir.join(CA_KEY_FILE).exists();
    let written = write_certificates(&dir, &hosts, &args.words).map_err(|e| e.to_string())?;
    if created_ca {
        println!(
            "created the cluster CA: {} (keep {} secret)",
            dir.join(CA_FILE).display(),
            dir.join(CA_KEY_FILE).display()
        );
    }
    for file in written
        .iter()
        .filter(|f| !f.ends_with(CA_FILE) && !f.ends_with(CA_KEY_FILE))
    {
        println!("wrote {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
