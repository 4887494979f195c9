# data stage
