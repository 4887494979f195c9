# lammps stage
