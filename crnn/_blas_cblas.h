/* _blas_cblas.h -- adapters from the crnn seam to a CBLAS found at run time.
 *
 * The seam (src/blas.h) speaks ptrdiff_t sizes and crnn_trans; a CBLAS
 * speaks CblasRowMajor/CblasTrans enums and 64-bit (ILP64) or 32-bit (LP64)
 * integers. The runtime hands over the two resolved symbols, and gets back a
 * crnn_blas whose functions translate and call them.
 */
#ifndef CRNN_BLAS_CBLAS_H
#define CRNN_BLAS_CBLAS_H

#include <stddef.h>

#include "blas.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bind cblas_sgemm / cblas_dgemm (any prefix or suffix) taking int_bits-wide
 * integers (64 or 32) and fill *out with the adapters. Returns 0, or -1 for a
 * NULL symbol or another width (nothing is changed then). One binding per
 * process: binding again replaces it for every user. */
int crnn_cblas_bind(void *sgemm, void *dgemm, int int_bits, crnn_blas *out);

/* Test hook: the largest size or leading dimension handed to an LP64 BLAS
 * (default INT32_MAX); larger products go to crnn_blas_naive(). Lowering it
 * lets a test exercise that path with small matrices. Returns the old limit;
 * limit < 1 only reads it. */
ptrdiff_t crnn_cblas_lp64_limit(ptrdiff_t limit);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_BLAS_CBLAS_H */
