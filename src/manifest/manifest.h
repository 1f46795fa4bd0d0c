/* The manifest: what a sealed service is (entry, argv, env, paths, limits, policy,
 * engine, identity, trees, encryption) and every file it may see, with hashes.
 * Canonical JSON codec (formats 1 to 3) and the app measurement. Pure: no OS
 * calls. docs/bundle-format.md describes every key. */
#ifndef TEEPY_MANIFEST_MANIFEST_H
#define TEEPY_MANIFEST_MANIFEST_H

#include "../common/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Format 3 adds a venv: its files bundled under /venv and its site directories
 * ("site"). teepy build writes the lowest format that holds the manifest (3 with a
 * venv, else 2, so an app's measurement does not change with teepy's version);
 * format 1 (before the engine, trees, ids, network and encryption keys existed) is
 * still read, with their defaults. */
#define TP_MANIFEST_FORMAT     3
#define TP_MANIFEST_FORMAT_MIN 1
#define TP_APP_DIR	       "/app"  /* where the app's own files are inside the root */
#define TP_VENV_DIR	       "/venv" /* where a build's --venv is: its files are bundled */

#define TP_MANIFEST_MAX_ID		65535u /* product id and security version: SGX's 16 bits */
#define TP_MANIFEST_KEY_ID_MAX		128    /* bytes of an encryption key id */
#define TP_MANIFEST_CHUNK_MIN		4096u
#define TP_MANIFEST_CHUNK_MAX		(1u << 20) /* what a protected file's header holds */
#define TP_MANIFEST_ENGINE_VERSION_SIZE 8	   /* "MAJOR.MINOR", up to 3 digits each, and NUL */

enum tp_processes { TP_PROCESSES_NONE, TP_PROCESSES_MANIFEST };

/* policy.network: "none" (TEEX), or "listen": accept on one socket handed in */
enum tp_network { TP_NETWORK_NONE, TP_NETWORK_LISTEN };

enum tp_engine { TP_ENGINE_CPYTHON, TP_ENGINE_PYPY };

/* What a tree of system files is: the interpreter's prefix (its stdlib and
 * lib-dynload), shared libraries, installed packages, a virtual environment. */
enum tp_tree_kind { TP_TREE_PREFIX, TP_TREE_LIBRARIES, TP_TREE_PACKAGES, TP_TREE_VENV };

enum tp_cipher { TP_CIPHER_NONE, TP_CIPHER_AES_256_GCM };

struct tp_manifest_file {
	char *path; /* absolute, normalized, inside the root */
	/* of the bytes stored: for an encrypted file, its protected (ciphertext) form */
	uint8_t sha256[32];
	uint64_t size;	 /* bytes stored */
	uint32_t mode;	 /* permission bits */
	bool bundled;	 /* content travels in the bundle; else a host file at `path` */
	bool encrypted;	 /* stored as a protected file (format 2 only) */
	uint64_t mtime;	 /* system files: seconds, kept so CPython's timestamp-checked
			  * .pyc caches stay valid; 0 for bundled files (reproducible) */
	uint64_t offset; /* in the blob area, computed from the bundled files before it */
	/* an encrypted file's protected-file id (pfs/pfs.h): a keyed hash of its path and
	 * plaintext, no oracle for the plaintext; zero otherwise */
	uint8_t id[32];
};

/* A directory whose files the bundle may reference by path (format 2). */
struct tp_manifest_tree {
	char *path; /* absolute, normalized */
	enum tp_tree_kind kind;
};

struct tp_manifest_engine {
	enum tp_engine name;
	char version[TP_MANIFEST_ENGINE_VERSION_SIZE]; /* Python language "MAJOR.MINOR" */
};

/* How the encrypted files are protected; cipher TP_CIPHER_NONE ("encryption": null)
 * when none is. */
struct tp_manifest_encryption {
	enum tp_cipher cipher;
	uint32_t chunk_size;			 /* plaintext bytes per chunk, a power of 2 */
	char key_id[TP_MANIFEST_KEY_ID_MAX + 1]; /* which key the CAS releases */
};

struct tp_strlist {
	char **items;
	size_t count;
};

struct tp_manifest {
	unsigned format;	/* TP_MANIFEST_FORMAT_MIN..TP_MANIFEST_FORMAT: read, and written */
	char *entry;		/* inside the root */
	struct tp_strlist argv; /* sys.argv[1:] */
	struct tp_strlist env;	/* NAME=VALUE, sorted by name */
	struct tp_strlist python_path;
	/* format 3: site directories, in order: python_path entries under /venv (a venv's
	 * site-packages) whose .pth files are read as CPython's site reads them */
	struct tp_strlist site;
	struct tp_strlist preload;
	struct tp_limits limits; /* scratch_bytes is "policy.scratch" in the JSON */
	enum tp_processes processes;
	enum tp_network network;
	struct tp_manifest_engine engine;
	uint32_t product_id;		/* 0 to TP_MANIFEST_MAX_ID */
	uint32_t security_version;	/* 0 to TP_MANIFEST_MAX_ID */
	struct tp_manifest_tree *trees; /* sorted by path, unique; none: each system file
					 * stands at its own path (format 1's behaviour) */
	size_t tree_count;
	struct tp_manifest_encryption encryption;
	struct tp_manifest_file *files; /* sorted by path, unique */
	size_t file_count;
};

/* An empty manifest of format TP_MANIFEST_FORMAT whose every key means today's
 * behaviour: the default limits, processes and network none, engine this teepy's
 * (tp_manifest_engine_this), product id and security version 0, no trees (the
 * system files are wherever the file table puts them), no encryption. */
void tp_manifest_init(struct tp_manifest *m);

/* The engine this teepy runs: cpython, the MAJOR.MINOR of the interpreter it was
 * built for. */
void tp_manifest_engine_this(struct tp_manifest_engine *e);

/* The lowest format that holds m: 3 with a venv (site directories, files bundled
 * under /venv), else 2. Pure. */
unsigned tp_manifest_lowest_format(const struct tp_manifest *m);

/* Names as the JSON spells them. */
const char *tp_engine_name(enum tp_engine e);
const char *tp_network_name(enum tp_network n);
const char *tp_tree_kind_name(enum tp_tree_kind k);
const char *tp_cipher_name(enum tp_cipher c);

/* Whether the bundle or any of its files is encrypted. */
bool tp_manifest_any_encrypted(const struct tp_manifest *m);

/* A valid manifest this teepy cannot run: an engine it was not built for
 * (engine.h), or another version of one. Returns 0, or -ENOTSUP with one line in
 * err saying what is not supported. Pure: the caller refuses the bundle. */
int tp_manifest_check_runnable(const struct tp_manifest *m, char *err, size_t err_size);

/* Canonical JSON of m's format: sorted keys, no insignificant space, UTF-8.
 * malloc'd, NUL-terminated. Returns 0, -EILSEQ if a path, argument, env entry or
 * module name is not UTF-8, -ENAMETOOLONG for an env name of 256 bytes or more,
 * -EINVAL for a format this teepy does not write or a format 1 manifest with a
 * key format 1 lacks set to other than its default, or -ENOMEM. */
int tp_manifest_to_json(const struct tp_manifest *m, char **out, size_t *size);

/* Parses and validates format 1 or 2; the bytes must be exactly the canonical
 * form. A format 1 manifest gets the defaults of tp_manifest_init for the keys it
 * lacks. On error returns -EINVAL or -ENOMEM, with one line in err. */
int tp_manifest_from_json(const char *json, size_t size, struct tp_manifest *m, char *err,
			  size_t err_size);

/* The same for bytes this teepy has accepted before (kept by a verified run: the
 * runner's cache index): parsed and validated alike, but not encoded again to be
 * compared, which for numpy's 307 files took 0.6 ms and a megabyte of allocations. */
int tp_manifest_from_known_json(const char *json, size_t size, struct tp_manifest *m, char *err,
				size_t err_size);

void tp_manifest_free(struct tp_manifest *m);

/* Sorts the file table (computing offsets), the trees and env; fails on a path
 * listed twice. */
int tp_manifest_finish(struct tp_manifest *m, char *err, size_t err_size);

/* Total bytes of bundled file contents. */
uint64_t tp_manifest_blob_size(const struct tp_manifest *m);

/* The `app` measurement: SHA-256 over a domain tag and the canonical manifest. */
void tp_manifest_measure(const char *canonical, size_t size, uint8_t out[32]);

int tp_strlist_push(struct tp_strlist *l, const char *s);
void tp_strlist_free(struct tp_strlist *l);

/* True for "/a/b": absolute, no empty, "." or ".." component, no trailing slash, no
 * control character (below 0x20, or 0x7f). */
bool tp_path_is_normal(const char *path);

/* s made safe to print on a terminal: every byte outside printable ASCII as \xNN,
 * a backslash doubled; cut with "..." to fit size bytes. Returns out. */
const char *tp_escape(const char *s, char *out, size_t size);

/* True if s holds a control character (below 0x20, or 0x7f). */
bool tp_has_control(const char *s);

/* True for a module name import takes: dotted ASCII identifiers ("numpy.linalg"). */
bool tp_module_name_ok(const char *name);

#endif
