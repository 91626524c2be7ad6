//! `make install` as a packager runs it: an unprivileged user, a staging directory (DESTDIR), the
//! server chosen by the `pg_config` on PATH, and no package manager anywhere. The tree is a copy
//! the user owns, and the `pg_scribe` binary is the one cargo built for these tests (the cargo
//! step is stubbed: building is cargo's business, installing is the Makefile's).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{bindir, scratch_dir};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("run");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn pg_config(what: &str) -> PathBuf {
    let out = Command::new(bindir().join("pg_config"))
        .arg(what)
        .output()
        .expect("pg_config");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `staged` under `stage`: DESTDIR is a plain prefix to the absolute install path.
fn staged(stage: &Path, path: &Path) -> PathBuf {
    stage.join(path.strip_prefix("/").expect("absolute path"))
}

/// A tree the test user owns: the files `make install` reads, the binary in place of a build.
fn copy_tree(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    run(Command::new("cp")
        .arg("-r")
        .arg(src.join("Makefile"))
        .arg(src.join("wal2sql"))
        .arg(src.join("scripts"))
        .arg(dest));
    // Build products of an earlier in-tree build would let make skip the compile under test.
    run(Command::new("find").arg(dest.join("wal2sql")).args([
        "(", "-name", "*.o", "-o", "-name", "*.so", "-o", "-name", "*.bc", ")", "-delete",
    ]));
    let release = dest.join("target/release");
    std::fs::create_dir_all(&release).expect("mkdir target/release");
    std::fs::copy(env!("CARGO_BIN_EXE_pg_scribe"), release.join("pg_scribe")).expect("copy bin");
}

#[test]
fn make_install_as_a_user_into_a_staging_directory_runs_no_package_manager() {
    if !is_root() {
        eprintln!("skipped: needs root to run make install as another (unprivileged) user");
        return;
    }
    let dir = scratch_dir("install");
    let tree = dir.join("tree");
    let stubs = dir.join("bin");
    let stage = dir.join("stage");
    let marker = dir.join("package-manager-called");
    std::fs::create_dir_all(&tree).expect("mkdir tree");
    std::fs::create_dir_all(&stubs).expect("mkdir stubs");
    copy_tree(&tree);

    // Every package manager (and sudo) fails loudly and leaves a mark.
    for tool in [
        "apt-get",
        "apt",
        "dpkg",
        "dpkg-query",
        "sudo",
        "dnf",
        "yum",
        "apk",
    ] {
        write_script(
            &stubs.join(tool),
            &format!(
                "#!/bin/sh\necho \"make install ran $0 $*\" >&2\necho \"$0 $*\" >>{}\nexit 97\n",
                marker.display()
            ),
        );
    }
    write_script(&stubs.join("cargo"), "#!/bin/sh\nexit 0\n");
    // The server under test is the one whose pg_config comes first on PATH.
    std::os::unix::fs::symlink(bindir().join("pg_config"), stubs.join("pg_config"))
        .expect("symlink pg_config");
    run(Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&dir));

    let out = Command::new("runuser")
        // cargo test exports CARGO; the Makefile must find the stub on PATH instead.
        .args(["-u", "nobody", "--", "env", "-u", "CARGO"])
        .arg(format!("PATH={}:/usr/bin:/bin", stubs.display()))
        .arg("HOME=/nonexistent")
        .arg("make")
        .arg("-C")
        .arg(&tree)
        .arg("install")
        .arg(format!("DESTDIR={}", stage.display()))
        .arg("PREFIX=/opt/pg_scribe")
        .output()
        .expect("run make install");
    let log = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "a package manager was run:\n{log}");
    assert!(out.status.success(), "make install failed:\n{log}");

    let prefix = stage.join("opt/pg_scribe");
    let binary = prefix.join("bin/pg_scribe");
    let mode = std::fs::metadata(&binary)
        .unwrap_or_else(|e| panic!("{}: {e}\n{log}", binary.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "binary mode");
    let libdir = staged(&stage, &pg_config("--pkglibdir"));
    let extdir = staged(&stage, &pg_config("--sharedir")).join("extension");
    for (file, needle) in [
        ("share/man/man1/pg_scribe.1", ".TH PG_SCRIBE 1"),
        (
            "share/bash-completion/completions/pg_scribe",
            "--backup-dir",
        ),
        ("share/zsh/site-functions/_pg_scribe", "#compdef pg_scribe"),
        (
            "share/fish/vendor_completions.d/pg_scribe.fish",
            "-l backup-dir",
        ),
    ] {
        let text = std::fs::read_to_string(prefix.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}\n{log}"));
        assert!(text.contains(needle), "{file} lacks {needle:?}");
    }
    for file in [
        libdir.join("wal2sql.so"),
        extdir.join("wal2sql.control"),
        extdir.join("wal2sql--1.0.sql"),
    ] {
        assert!(file.is_file(), "{} not installed\n{log}", file.display());
    }
}

/// No container engine runs the docker/ files here; this checks what can be checked without one:
/// the compose file parses and names what exists, and the images are built by the project's own
/// tested steps.
#[test]
fn docker_files_parse_and_build_with_the_project_scripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docker = root.join("docker");
    let script = r#"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
for name, svc in d["services"].items():
    build = svc.get("build")
    print(name, build["dockerfile"] if build else "-", svc.get("pid", "-"))
"#;
    let out = match Command::new("python3")
        .args(["-c", script])
        .arg(docker.join("compose.yaml"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: python3 not available ({e})");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'yaml'") {
        eprintln!("skipped: python3 has no yaml module");
        return;
    }
    assert!(out.status.success(), "compose.yaml: {stderr}");
    let services = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        services,
        "db docker/postgres.Dockerfile -\n\
         streamer docker/pg_scribe.Dockerfile -\n\
         rotate docker/pg_scribe.Dockerfile service:streamer\n"
    );

    for (file, steps) in [
        (
            "pg_scribe.Dockerfile",
            &["./scripts/install-deps.sh", "make install DESTDIR="][..],
        ),
        (
            "postgres.Dockerfile",
            &[
                "./scripts/install-deps.sh",
                "make -C wal2sql install DESTDIR=",
                "COPY docker/initdb/",
                "shared_preload_libraries = 'wal2sql'",
            ][..],
        ),
    ] {
        let text = std::fs::read_to_string(docker.join(file)).expect("read Dockerfile");
        for step in steps {
            assert!(text.contains(step), "{file} lacks {step:?}");
        }
    }
    for path in [
        "scripts/install-deps.sh",
        "docker/initdb/10-wal2sql.sql",
        ".dockerignore",
    ] {
        assert!(root.join(path).is_file(), "{path} missing");
    }
}
