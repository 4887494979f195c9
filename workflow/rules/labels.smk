# labels stage
