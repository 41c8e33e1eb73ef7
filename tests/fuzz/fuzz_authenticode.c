/*
 * fuzz_authenticode.c: libFuzzer target for the authenticode format's PE
 * header checks (sigfs_pe_parse, signer/format_authenticode.c): each input
 * is the start of a file copied into an authenticode key's inbox; the file's
 * size is the input's, or (by the input's first byte) larger, as when only
 * the headers are in memory and the rest is streamed.
 *
 * Besides ASan and UBSan findings (every read of the headers is checked
 * against their length), it aborts when the parser breaks its contract
 * (format_authenticode.h): a refusal is -EBADMSG or -EEXIST with one
 * printable line; an accepted image has its checksum field before its
 * certificate directory entry, both inside its headers, headers inside
 * the file and the bytes given, and sections ending inside the file; and
 * its certificate directory entry is zero. Built by tests/fuzz/run.sh.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/format_authenticode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_pe pe;
	uint64_t file;
	int r;

	if (size < 1)
		return 0;
	/* The first byte: how much larger the file is than the bytes given. */
	file = (uint64_t)(size - 1) + (uint64_t)data[0] * 4096;
	r = sigfs_pe_parse(data + 1, size - 1, file, &pe, err);
	if (r < 0) {
		if ((r != -EBADMSG && r != -EEXIST) || !err[0] || strchr(err, '\n'))
			abort();
		for (const char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20)
				abort();
		return 0;
	}
	if (err[0] || pe.checksum_off + 4 > pe.certdir_off || pe.certdir_off + 8 > pe.headers ||
	    pe.headers > size - 1 || pe.headers > file || pe.sections_end < pe.headers ||
	    pe.sections_end > file)
		abort();
	for (int i = 0; i < 8; i++)
		if (data[1 + pe.certdir_off + i])
			abort();
	return 0;
}
