/* LAPACK's symmetric eigensolvers, from Debian's OpenBLAS.
 * That build has no LAPACKE (its config says NO_LAPACKE) but exports the Fortran symbols;
 * these are their prototypes (Fortran calling convention: every argument by pointer,
 * column-major matrices; for a symmetric matrix column- and row-major are the same). */
#ifndef LEARNGENE_CLAPACK_SHIM_H
#define LEARNGENE_CLAPACK_SHIM_H

/* A = Z diag(W) Z^T for symmetric A (n x n, lda >= n), divide and conquer.
 * jobz 'V': eigenvectors overwrite A (column j of the column-major result = vector j);
 * 'N': eigenvalues only. uplo 'U'/'L': which triangle is read. W ascending.
 * Workspace query: lwork = liwork = -1. info = 0 on success, > 0 if it failed to converge. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info);

#endif
