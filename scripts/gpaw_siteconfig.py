# GPAW's build configuration (GPAW_CONFIG, read by scripts/setup_env.sh): link Debian's FFTW
# (libfftw3-dev). Without it GPAW falls back to numpy's FFT; with it one PBE label here took
# 84 s of CPU instead of 102-117 s, the same energy to 3e-13 eV (docs/dft.md, "Throughput").
fftw = True
libraries += ['fftw3']  # noqa: F821 - GPAW's build defines `libraries` before it runs this file
