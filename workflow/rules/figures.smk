# figures stage
