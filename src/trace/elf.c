/* DT_NEEDED and DT_RUNPATH of an ELF64 object, from its bytes; see elf.h. */
#include "elf.h"

#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#define TP_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define TP_ELF_MACHINE EM_AARCH64
#else
#error "teepy knows the ELF machine of x86_64 and aarch64 only"
#endif

/* [offset, offset + len) lies inside size bytes */
static bool inside(uint64_t offset, uint64_t len, size_t size)
{
	return offset <= size && len <= size - offset;
}

/* The file offset of a virtual address, through the PT_LOAD segment holding it. */
static int vaddr_to_offset(const uint8_t *data, size_t size, const Elf64_Ehdr *eh, uint64_t vaddr,
			   uint64_t *offset, uint64_t *room)
{
	for (uint16_t i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, data + eh->e_phoff + (uint64_t)i * eh->e_phentsize, sizeof(ph));
		if (ph.p_type != PT_LOAD || vaddr < ph.p_vaddr || vaddr - ph.p_vaddr >= ph.p_filesz)
			continue;
		uint64_t off = ph.p_offset + (vaddr - ph.p_vaddr);
		if (off < ph.p_offset || !inside(off, 0, size))
			return -EBADMSG;
		*offset = off;
		*room = ph.p_filesz - (vaddr - ph.p_vaddr);
		if (*room > size - off)
			*room = size - off;
		return 0;
	}
	return -EBADMSG;
}

/* A NUL-terminated string at strtab + index, inside the table and the file. */
static char *string_at(const uint8_t *data, uint64_t strtab, uint64_t strsz, uint64_t index)
{
	if (index >= strsz)
		return NULL;
	const char *s = (const char *)data + strtab + index;
	size_t max = (size_t)(strsz - index);
	size_t len = strnlen(s, max);

	if (len == max || len == 0 || len > PATH_MAX)
		return NULL;
	return strndup(s, len);
}

int tp_elf_deps(const void *bytes, size_t size, struct tp_elf_deps *out)
{
	const uint8_t *data = bytes;
	Elf64_Ehdr eh;
	Elf64_Phdr dyn = { 0 };
	bool have_dyn = false;
	uint64_t strtab_addr = 0, strsz = 0, strtab, room, runpath_index = 0;
	bool have_strtab = false, have_strsz = false, have_runpath = false;
	int r;

	memset(out, 0, sizeof(*out));
	if (size < sizeof(eh) || memcmp(data, ELFMAG, SELFMAG) != 0)
		return -ENOEXEC;
	memcpy(&eh, data, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != TP_ELF_MACHINE || (eh.e_type != ET_DYN && eh.e_type != ET_EXEC))
		return -ENOEXEC;
	if (eh.e_phnum == 0)
		return 0;
	if (eh.e_phentsize < sizeof(Elf64_Phdr) ||
	    !inside(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, size))
		return -EBADMSG;

	for (uint16_t i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, data + eh.e_phoff + (uint64_t)i * eh.e_phentsize, sizeof(ph));
		if (ph.p_type == PT_DYNAMIC) {
			if (have_dyn)
				return -EBADMSG;
			dyn = ph;
			have_dyn = true;
		}
	}
	if (!have_dyn)
		return 0;
	if (!inside(dyn.p_offset, dyn.p_filesz, size))
		return -EBADMSG;

	/* first pass: where the string table is */
	size_t n = (size_t)(dyn.p_filesz / sizeof(Elf64_Dyn));
	for (size_t i = 0; i < n; i++) {
		Elf64_Dyn d;
		memcpy(&d, data + dyn.p_offset + i * sizeof(d), sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		if (d.d_tag == DT_STRTAB) {
			strtab_addr = d.d_un.d_ptr;
			have_strtab = true;
		} else if (d.d_tag == DT_STRSZ) {
			strsz = d.d_un.d_val;
			have_strsz = true;
		} else if (d.d_tag == DT_RUNPATH || (d.d_tag == DT_RPATH && !have_runpath)) {
			runpath_index = d.d_un.d_val;
			have_runpath = true;
		}
	}
	if (!have_strtab || !have_strsz)
		return 0; /* nothing names a library without a string table */
	if ((r = vaddr_to_offset(data, size, &eh, strtab_addr, &strtab, &room)) < 0)
		return r;
	if (strsz > room)
		return -EBADMSG;

	/* second pass: the names */
	for (size_t i = 0; i < n; i++) {
		Elf64_Dyn d;
		memcpy(&d, data + dyn.p_offset + i * sizeof(d), sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		if (d.d_tag != DT_NEEDED)
			continue;
		if (out->count == TP_ELF_MAX_NEEDED)
			return -EBADMSG;
		char *name = string_at(data, strtab, strsz, d.d_un.d_val);
		if (!name)
			return -EBADMSG;
		char **needed = realloc(out->needed, (out->count + 1) * sizeof(char *));
		if (!needed) {
			free(name);
			return -ENOMEM;
		}
		out->needed = needed;
		out->needed[out->count++] = name;
	}
	if (have_runpath && !(out->runpath = string_at(data, strtab, strsz, runpath_index)))
		return -EBADMSG;
	return 0;
}

void tp_elf_deps_free(struct tp_elf_deps *deps)
{
	for (size_t i = 0; i < deps->count; i++)
		free(deps->needed[i]);
	free(deps->needed);
	free(deps->runpath);
	memset(deps, 0, sizeof(*deps));
}

int tp_elf_runpath_each(const char *runpath, const char *origin_dir,
			int (*fn)(const char *dir, void *ctx), void *ctx)
{
	const char *p = runpath;

	while (p && *p) {
		size_t len = strcspn(p, ":");
		char dir[PATH_MAX];
		size_t used = 0;
		bool fits = true;

		for (size_t i = 0; i < len && fits;) {
			const char *sub = NULL;
			size_t skip = 0;
			if (strncmp(p + i, "$ORIGIN", 7) == 0)
				sub = origin_dir, skip = 7;
			else if (strncmp(p + i, "${ORIGIN}", 9) == 0)
				sub = origin_dir, skip = 9;
			if (sub && skip <= len - i) {
				size_t sl = strlen(sub);
				fits = used + sl < sizeof(dir);
				if (fits)
					memcpy(dir + used, sub, sl), used += sl;
				i += skip;
			} else {
				fits = used + 1 < sizeof(dir);
				if (fits)
					dir[used++] = p[i];
				i++;
			}
		}
		dir[used] = '\0';
		/* only absolute directories: a relative one is relative to the loader's cwd */
		if (fits && dir[0] == '/') {
			int r = fn(dir, ctx);
			if (r)
				return r;
		}
		p += len;
		if (*p == ':')
			p++;
	}
	return 0;
}
