// Package bundle owns the on-disk unit of deployment: a directory
// bundles/<version>/ whose manifest.json lists every file with its size and
// SHA-256, written under a temporary name and renamed into place, and the
// CURRENT file naming the live version. A bundle that fails verification is
// refused, so a half-written or corrupted build can never replace a good one.
package bundle
