/* gradcheck.h - finite-difference gradient checks for the layer tests.
 *
 * The objective is evaluated by the caller's function in double from the
 * float forward pass; the check perturbs each chosen element of a float
 * array by +-h, takes the central difference in double and compares it with
 * the analytic gradient: |a - n| <= atol + rtol * max(|a|, |n|). */
#ifndef PST_GRADCHECK_H
#define PST_GRADCHECK_H

#include <stddef.h>

typedef double (*objective_fn)(void *ctx);

/* Checks up to max_checks elements of x (spread over the array) and returns
 * the number of mismatches (0 = pass); prints the first few mismatches with
 * `what` so a failure says where. */
int gradcheck(const char *what, objective_fn f, void *ctx, float *x, const float *analytic,
              size_t n, size_t max_checks, double h, double atol, double rtol);

/* Fills x[0..n) with uniform values in [lo, hi) from a small LCG seeded by seed. */
void fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi);

/* Sum of x[i] * r[i] in double. */
double dot_double(const float *x, const float *r, size_t n);

#endif
