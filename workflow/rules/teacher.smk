# teacher stage
