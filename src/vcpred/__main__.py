from vcpred.cli import run

run()
