# Sourced by the scripts that run TensorFlow (build, tests): the one place its two log
# variables are set. Without them, TensorFlow's C++ start-up lines reach every process's
# stderr, the notebooks' outputs included; the kernels and subprocesses inherit them.
export TF_CPP_MIN_LOG_LEVEL=3 TF_ENABLE_ONEDNN_OPTS=0
