/* audiograd kernel prelude: scalar helpers shared by every generated kernel. */
#ifdef AG_MVEC
#define AG_VEC __attribute__((simd("notinbranch")))
#else
#define AG_VEC
#endif
float expf(float) AG_VEC; float logf(float) AG_VEC; float log1pf(float) AG_VEC;
float sinf(float) AG_VEC; float cosf(float) AG_VEC; float tanhf(float) AG_VEC;
float powf(float, float) AG_VEC; float sqrtf(float);
double exp(double) AG_VEC; double log(double) AG_VEC; double log1p(double) AG_VEC;
double sin(double) AG_VEC; double cos(double) AG_VEC; double tanh(double) AG_VEC;
double pow(double, double) AG_VEC; double sqrt(double);
#define AG_INF __builtin_inf()
#define AG_NAN __builtin_nan("")
#define AG_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define AG_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define AG_SIGN(a) ((a) > 0 ? 1 : ((a) < 0 ? -1 : (a)))
static inline float ag_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline double ag_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
