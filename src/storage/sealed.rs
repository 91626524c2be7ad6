//! What may happen to a differential after its seal: compression in place, by `--rotate-diff
//! --compress` (the requester) or by the streamer for the seals it makes on its own
//! (`--start --rotate-every … --compress`).

use crate::error::{Error, Result, Situation};
use crate::storage::backup_dir::{Chain, DiffName};
use crate::storage::compress::{self, Compression};
use crate::storage::durable;
use crate::storage::manifest;

/// Replace a sealed diff by its compressed form: write beside it under a temporary name, make
/// it durable, rename, point its manifest at it, then remove the plain file. A crash in between
/// leaves the plain file, which is what readers prefer when both exist (verification then checks
/// the plain file's text against the manifest's content digest). Returns the new file name and
/// its size.
pub async fn compress_sealed(chain: &Chain, sealed: &str, c: Compression) -> Result<(String, u64)> {
    let chain_dir = &chain.dir;
    let plain = chain_dir.join(sealed);
    let name = format!("{sealed}{}", c.extension());
    let target = chain_dir.join(&name);
    let temp = durable::fixed_temp_path_for(&target);
    let _ = std::fs::remove_file(&temp);
    let mut input = tokio::fs::File::open(&plain)
        .await
        .map_err(|e| Error::io(Situation::Backup, "open file", &plain, &e))?;
    let written = compress::write_stream(&mut input, &temp, c).await?;
    durable::rename_durable(&temp, &target)?;
    let stored: DiffName = name.parse()?;
    manifest::record_compressed(chain, stored, c, written.size, &written.sha256)?;
    std::fs::remove_file(&plain)
        .map_err(|e| Error::io(Situation::Backup, "remove file", &plain, &e))?;
    durable::fsync_dir(chain_dir)?;
    Ok((name, written.size))
}
