# distill stage
