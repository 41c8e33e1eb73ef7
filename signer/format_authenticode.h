/*
 * format_authenticode.h: the authenticode format's PE header checks
 * (signer/format_authenticode.c), apart for its fuzzer and unit test.
 */
#ifndef SIGFS_FORMAT_AUTHENTICODE_H
#define SIGFS_FORMAT_AUTHENTICODE_H

#include <stddef.h>
#include <stdint.h>

/* Where an unsigned PE image's fields are, once sigfs_pe_parse accepted it. */
struct sigfs_pe {
	uint64_t checksum_off;      /* the optional header's CheckSum */
	uint64_t certdir_off;       /* data directory 4: the certificate table's offset and size */
	uint64_t headers;           /* SizeOfHeaders: the sections' data starts there */
	uint64_t sections_end;      /* the last section's data ends there; the rest is trailing data */
};

/*
 * Check the first hlen bytes h of an image of size bytes (hlen = size, or
 * at least its headers) as an unsigned PE32 or PE32+ image whose sections
 * follow its headers and each other without gaps: 0 and pe filled, or
 * -EBADMSG (not such an image), -EEXIST (signed already: it has a
 * certificate table), with one line in err. Every offset is checked
 * against hlen and size before it is read.
 */
int sigfs_pe_parse(const uint8_t *h, size_t hlen, uint64_t size, struct sigfs_pe *pe, char *err);

/* The PE checksum of a file of size bytes whose byte sum (even offsets low, odd high) is sum. */
uint32_t sigfs_pe_checksum_finish(uint64_t sum, uint64_t size);

#endif
