# common stage
