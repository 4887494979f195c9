# efficiency stage
