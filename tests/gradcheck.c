/* gradcheck.c - finite-difference gradient checks (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>

int gradcheck(const char *what, objective_fn f, void *ctx, float *x, const float *analytic,
              size_t n, size_t max_checks, double h, double atol, double rtol)
{
    size_t stride = n > max_checks ? n / max_checks : 1;
    int bad = 0;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = (float)(keep + h);
        double hp = (double)x[i] - keep; /* the step actually taken in float */
        double fp = f(ctx);
        x[i] = (float)(keep - h);
        double hm = keep - (double)x[i];
        double fm = f(ctx);
        x[i] = keep;
        double num = (fp - fm) / (hp + hm);
        double a = analytic[i];
        double tol = atol + rtol * fmax(fabs(a), fabs(num));
        if (!(fabs(a - num) <= tol)) {
            if (bad < 5)
                fprintf(stderr, "\n  gradcheck %s[%zu]: analytic %.7g numeric %.7g\n", what, i, a,
                        num);
            bad++;
        }
    }
    return bad;
}

void fill_uniform(float *x, size_t n, unsigned seed, float lo, float hi)
{
    unsigned long long s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        x[i] = (float)(lo + (hi - lo) * u);
    }
}

double dot_double(const float *x, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * r[i];
    return s;
}
