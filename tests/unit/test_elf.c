/* ELF dependencies from bytes: the names, the runpath, and refusal of bad offsets. */
#include "test.h"
#include "../../src/trace/elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A minimal shared object: header, PT_LOAD over the whole file, PT_DYNAMIC, the
 * dynamic entries, then the string table. */
struct image {
	uint8_t bytes[1024];
	size_t size;
	size_t dyn_off, str_off;
};

static void build(struct image *im, const char *const *names, size_t count, const char *runpath)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr load = { 0 }, dynph = { 0 };
	char strtab[256] = { 0 };
	size_t strsz = 1, name_at[8], runpath_at = 0;
	Elf64_Dyn dyn[12];
	size_t nd = 0;

	for (size_t i = 0; i < count; i++) {
		name_at[i] = strsz;
		strcpy(strtab + strsz, names[i]);
		strsz += strlen(names[i]) + 1;
	}
	if (runpath) {
		runpath_at = strsz;
		strcpy(strtab + strsz, runpath);
		strsz += strlen(runpath) + 1;
	}
	memset(im, 0, sizeof(*im));
	im->dyn_off = sizeof(eh) + 2 * sizeof(Elf64_Phdr);
	for (size_t i = 0; i < count; i++)
		dyn[nd++] = (Elf64_Dyn){ .d_tag = DT_NEEDED, .d_un.d_val = name_at[i] };
	if (runpath)
		dyn[nd++] = (Elf64_Dyn){ .d_tag = DT_RUNPATH, .d_un.d_val = runpath_at };
	im->str_off = im->dyn_off + (nd + 3) * sizeof(Elf64_Dyn);
	dyn[nd++] = (Elf64_Dyn){ .d_tag = DT_STRTAB, .d_un.d_ptr = 0x400000 + im->str_off };
	dyn[nd++] = (Elf64_Dyn){ .d_tag = DT_STRSZ, .d_un.d_val = strsz };
	dyn[nd++] = (Elf64_Dyn){ .d_tag = DT_NULL };
	im->size = im->str_off + strsz;

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_type = ET_DYN;
	eh.e_machine = EM_X86_64;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;
	load = (Elf64_Phdr){ .p_type = PT_LOAD,
			     .p_offset = 0,
			     .p_vaddr = 0x400000,
			     .p_filesz = im->size,
			     .p_memsz = im->size };
	dynph = (Elf64_Phdr){ .p_type = PT_DYNAMIC,
			      .p_offset = im->dyn_off,
			      .p_vaddr = 0x400000 + im->dyn_off,
			      .p_filesz = nd * sizeof(Elf64_Dyn) };
	memcpy(im->bytes, &eh, sizeof(eh));
	memcpy(im->bytes + sizeof(eh), &load, sizeof(load));
	memcpy(im->bytes + sizeof(eh) + sizeof(load), &dynph, sizeof(dynph));
	memcpy(im->bytes + im->dyn_off, dyn, nd * sizeof(Elf64_Dyn));
	memcpy(im->bytes + im->str_off, strtab, strsz);
}

static void test_elf_lists_needed_libraries_and_runpath(void)
{
	const char *names[] = { "libbz2.so.1.0", "libc.so.6" };
	struct image im;
	struct tp_elf_deps d;

	build(&im, names, 2, "$ORIGIN/../lib:/opt/x");
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == 0);
	CHECK(d.count == 2);
	if (d.count == 2) {
		CHECK_STR(d.needed[0], "libbz2.so.1.0");
		CHECK_STR(d.needed[1], "libc.so.6");
	}
	CHECK_STR(d.runpath, "$ORIGIN/../lib:/opt/x");
	tp_elf_deps_free(&d);
}

static void test_elf_refuses_what_is_not_elf_or_not_this_machine(void)
{
	const char *names[] = { "libc.so.6" };
	struct image im;
	struct tp_elf_deps d;

	CHECK(tp_elf_deps("#!/bin/sh\n", 10, &d) == -ENOEXEC);
	tp_elf_deps_free(&d);
	build(&im, names, 1, NULL);
	im.bytes[EI_CLASS] = ELFCLASS32;
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == -ENOEXEC);
	tp_elf_deps_free(&d);
	build(&im, names, 1, NULL);
	((Elf64_Ehdr *)im.bytes)->e_machine = EM_ARM;
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == -ENOEXEC);
	tp_elf_deps_free(&d);
}

static void test_elf_refuses_offsets_outside_the_bytes(void)
{
	const char *names[] = { "libc.so.6" };
	struct image im;
	struct tp_elf_deps d;

	/* cut anywhere after the header: refused or fewer names, never a read past the end */
	build(&im, names, 1, NULL);
	for (size_t cut = sizeof(Elf64_Ehdr); cut < im.size; cut++) {
		uint8_t *copy = malloc(cut);
		memcpy(copy, im.bytes, cut);
		int r = tp_elf_deps(copy, cut, &d);
		CHECK(r == -EBADMSG || (r == 0 && d.count == 0));
		tp_elf_deps_free(&d);
		free(copy);
	}
	/* a name index past the string table */
	build(&im, names, 1, NULL);
	((Elf64_Dyn *)(im.bytes + im.dyn_off))[0].d_un.d_val = 4096;
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == -EBADMSG);
	tp_elf_deps_free(&d);
	/* a string table that claims more than the file holds */
	build(&im, names, 1, NULL);
	((Elf64_Dyn *)(im.bytes + im.dyn_off))[2].d_un.d_val = 1u << 30;
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == -EBADMSG);
	tp_elf_deps_free(&d);
	/* a name without its terminating NUL at the end of the table */
	build(&im, names, 1, NULL);
	im.bytes[im.size - 1] = 'x';
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == -EBADMSG);
	tp_elf_deps_free(&d);
	/* program headers past the end */
	build(&im, names, 1, NULL);
	((Elf64_Ehdr *)im.bytes)->e_phnum = 60000;
	CHECK(tp_elf_deps(im.bytes, im.size, &d) == -EBADMSG);
	tp_elf_deps_free(&d);
}

static void test_elf_reads_the_interpreters_own_needs(void)
{
	int fd = open(TP_PYTHON_EXE, O_RDONLY | O_CLOEXEC);
	struct stat st;
	struct tp_elf_deps d;
	bool libc = false;

	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	if (fd < 0)
		return;
	uint8_t *buf = malloc((size_t)st.st_size);
	CHECK(read(fd, buf, (size_t)st.st_size) == st.st_size);
	close(fd);
	CHECK(tp_elf_deps(buf, (size_t)st.st_size, &d) == 0);
	for (size_t i = 0; i < d.count; i++)
		libc = libc || strcmp(d.needed[i], "libc.so.6") == 0;
	CHECK(libc);
	tp_elf_deps_free(&d);
	free(buf);
}

struct collected {
	char dirs[4][256];
	int n;
};

static int collect(const char *dir, void *ctx)
{
	struct collected *c = ctx;
	if (c->n < 4)
		snprintf(c->dirs[c->n++], 256, "%s", dir);
	return 0;
}

static void test_elf_runpath_expands_origin_and_skips_relative_dirs(void)
{
	struct collected c = { 0 };

	tp_elf_runpath_each("$ORIGIN/../lib:relative:${ORIGIN}:/opt/x::", "/usr/lib/py", collect,
			    &c);
	CHECK(c.n == 3);
	CHECK_STR(c.dirs[0], "/usr/lib/py/../lib");
	CHECK_STR(c.dirs[1], "/usr/lib/py");
	CHECK_STR(c.dirs[2], "/opt/x");
}

TESTS(elf_tests) = {
	{ "elf_lists_needed_libraries_and_runpath", test_elf_lists_needed_libraries_and_runpath },
	{ "elf_refuses_what_is_not_elf_or_not_this_machine",
	  test_elf_refuses_what_is_not_elf_or_not_this_machine },
	{ "elf_refuses_offsets_outside_the_bytes", test_elf_refuses_offsets_outside_the_bytes },
	{ "elf_reads_the_interpreters_own_needs", test_elf_reads_the_interpreters_own_needs },
	{ "elf_runpath_expands_origin_and_skips_relative_dirs",
	  test_elf_runpath_expands_origin_and_skips_relative_dirs },
	END_TESTS,
};
